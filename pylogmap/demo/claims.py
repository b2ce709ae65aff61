"""The four properties the demo's map must show, checked on the map's own KL estimates.

The demo sells the method with one map, so the map has to be true to it (method.md section 7:
fine-tunes sit by their base, checkpoints of one run move less and less, and every number comes
with a standard error). On the zoo's lineages (a base model and what derives from it: its gentle
fine-tunes, its training checkpoints, its logit-lens layers) the claims are:

(a) `finetune_claim`: every fine-tune's nearest model outside its siblings (the other fine-tunes
    of the same base) is its own base, and the base is among its `BASE_RANK` nearest models;
(b) `lineage_claim`: for at least `LINEAGE_SHARE` of the rows, the nearest neighbour is in the
    row's own lineage;
(c) `checkpoint_claim`: along each checkpoint trajectory, the KL between consecutive checkpoints
    shrinks at every step;
(d) `standard_error_claim`: every KL estimate the report shows has a standard error of at most
    `SE_RATIO` of the estimate.

Plain functions over the all-pairs KL matrix and the rows' annotations; `report.build_report`
feeds them from the map file. Each returns a dict with `holds` and a one-line `summary`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BASE_RANK = 3
LINEAGE_SHARE = 0.8
SE_RATIO = 1 / 3


def _order(kl: np.ndarray, i: int) -> list[int]:
    """The other rows by increasing KL from row i (ties by row)."""
    return [int(j) for j in np.lexsort((np.arange(len(kl)), kl[i])) if j != i]


def finetune_claim(labels: Sequence[str], kl: np.ndarray, kind: Sequence[str], base: Sequence[str]) -> dict:
    """(a): the fine-tunes' nearest model outside their siblings is their base, ranked <= BASE_RANK."""
    row = {label: i for i, label in enumerate(labels)}
    details = []
    for i, label in enumerate(labels):
        if kind[i] != "finetune" or base[i] not in row:
            continue
        siblings = {j for j in range(len(labels)) if j != i and kind[j] == "finetune" and base[j] == base[i]}
        order = _order(kl, i)
        outside = next(j for j in order if j not in siblings)
        rank = order.index(row[base[i]]) + 1
        details.append({"model": label, "base": base[i], "nearest_outside_siblings": labels[outside],
                        "base_rank": rank, "holds": outside == row[base[i]] and rank <= BASE_RANK})
    holds = bool(details) and all(d["holds"] for d in details)
    summary = (f"every fine-tune's nearest model outside its siblings is its own base, and the base is among its "
               f"{BASE_RANK} nearest models ({sum(d['holds'] for d in details)} of {len(details)} fine-tunes)")
    return {"holds": holds, "summary": summary, "finetunes": details}


def lineage_claim(labels: Sequence[str], kl: np.ndarray, lineage: Sequence[str]) -> dict:
    """(b): the share of rows whose nearest neighbour is in their own lineage, at least LINEAGE_SHARE."""
    misses = []
    for i, label in enumerate(labels):
        nearest = _order(kl, i)[0]
        if lineage[nearest] != lineage[i]:
            misses.append({"model": label, "lineage": lineage[i], "nearest": labels[nearest],
                           "nearest_lineage": lineage[nearest]})
    n = len(labels)
    share = (n - len(misses)) / n if n else 0.0
    summary = (f"{n - len(misses)} of {n} rows ({share:.0%}) have their nearest neighbour in their own lineage "
               f"(at least {LINEAGE_SHARE:.0%})")
    return {"holds": n > 0 and share >= LINEAGE_SHARE, "summary": summary, "share": share, "misses": misses}


def checkpoint_claim(trajectories: Sequence[dict]) -> dict:
    """(c): along every checkpoint trajectory (`name`, `kl_bits_per_byte` of consecutive pairs),
    each consecutive KL is smaller than the one before."""
    details = [{"name": t["name"], "kl_bits_per_byte": list(t["kl_bits_per_byte"]),
                "holds": len(t["kl_bits_per_byte"]) >= 1
                and all(a > b for a, b in zip(t["kl_bits_per_byte"], t["kl_bits_per_byte"][1:]))}
               for t in trajectories]
    steps = "; ".join(f"{d['name']}: " + " > ".join(f"{x:.3f}" for x in d["kl_bits_per_byte"]) for d in details)
    summary = f"the KL between consecutive checkpoints shrinks at every step ({steps or 'no checkpoints'})"
    return {"holds": bool(details) and all(d["holds"] for d in details), "summary": summary, "trajectories": details}


def standard_error_claim(pairs: Sequence[dict]) -> dict:
    """(d): every reported pair (`a`, `b`, `kl_nats`, `se_nats`) has SE <= SE_RATIO x KL."""
    ratios = [(p["se_nats"] / p["kl_nats"] if p["kl_nats"] > 0 else np.inf, p) for p in pairs]
    worst_ratio, worst = max(ratios, key=lambda r: r[0]) if ratios else (np.inf, None)
    summary = ("every reported KL has a standard error of at most a third of the estimate "
               f"(largest: {worst_ratio:.2f}, {worst['a']} vs {worst['b']})" if worst else "no KL was reported")
    return {"holds": bool(ratios) and worst_ratio <= SE_RATIO, "summary": summary, "n_pairs": len(ratios),
            "max_ratio": float(worst_ratio), "worst": {"a": worst["a"], "b": worst["b"]} if worst else None}
