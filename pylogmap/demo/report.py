"""The demo's report: what the map shows, computed by the product's own functions.

`build_report` reads the demo's map file with the functions a user would call
(`mapping.neighbors_for`, `mapping.kl_between`, `analysis.trajectories_map`): the nearest
neighbours of each fine-tune, the KL between consecutive checkpoints, the KL between seeds and
the logit-lens layers; and it checks the four claims of `claims` on the map's all-pairs KL
estimates and its `lineage` / `kind` / `base` columns. `format_report` is the short text the
demo prints; the dict itself is saved as `DIR/report.json`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pylogmap.analysis import read_map, trajectories_map
from pylogmap.demo.claims import checkpoint_claim, finetune_claim, lineage_claim, standard_error_claim
from pylogmap.demo.zoo import Zoo, ZooModel
from pylogmap.numbers import format_pm
from pylogmap.mapping import geometry, kl_between, load_geometry, neighbors_for
from pylogmap.store import open_map

NEIGHBOURS = 3  # neighbours listed per fine-tune
PAIR_KEYS = ("model", "kl_nats", "se_nats", "kl_bits_per_byte", "se_bits_per_byte")
CLAIMS = ("finetunes", "lineages", "checkpoints", "standard_errors")


def build_report(map_path: Path, zoo: Zoo) -> dict:
    """The demo's findings and claims, computed by the product's functions on the map file."""
    report: dict = {"map": str(map_path), "corpus": zoo.corpus.origin, "finetunes": [], "trajectory": None,
                    "layers": None, "seeds": []}
    finetunes = [m for m in zoo.models if m.kind == "finetune"]
    with open_map(map_path) as mf:
        names = mf.model_names()
        report["n_models"], report["n_texts"] = int(mf.n_models), int(mf.n_texts)
        for ft in finetunes:
            res = neighbors_for(mf, ft.name, k=NEIGHBOURS)
            family = {ft.base} | {m.name for m in finetunes if m.base == ft.base and m.name != ft.name}
            nearest_name = names[res["neighbors"][0]["row"]]
            report["finetunes"].append({
                "model": ft.name,
                "base": ft.base,
                "neighbors": [{k: n[k] for k in PAIR_KEYS} for n in res["neighbors"]],
                "nearest": nearest_name,
                "nearest_is_base_or_sibling": nearest_name in family,
                "kl_to_base": kl_between(mf, ft.name, ft.base),
            })
        for a, b in _seed_pairs(zoo.models, names):
            report["seeds"].append(kl_between(mf, a, b))
        geo, _ = load_geometry(mf)
        labels = [mf.labels()[r] for r in geo.rows]
        annotations = mf.annotations()
        columns = {c: [str(x) for x in np.asarray(annotations[c])[geo.rows]] for c in ("lineage", "kind", "base")}
        data = read_map(mf, str(map_path))
    checkpoints = []
    for t in trajectories_map(data)["trajectories"]:
        cons = t["consecutive"]
        entry = {
            "name": t["name"], "labels": list(t["labels"]), "positions": [int(p) for p in t["positions"]],
            "kl_nats": [float(x) for x in cons["kl_nats"]], "se_nats": [float(x) for x in cons["se_nats"]],
            "kl_bits_per_byte": [float(x) for x in cons["kl_bpb"]],
            "se_bits_per_byte": [float(x) for x in cons["se_bpb"]],
        }
        if t["kind"] == "checkpoints":
            kl = entry["kl_nats"]
            entry["shrinks"] = bool(kl[-1] < kl[0])
            entry["monotone"] = bool(all(x > y for x, y in zip(kl, kl[1:])))
            checkpoints.append(entry)
            if t["name"] == zoo.config.checkpoint_run:
                report["trajectory"] = entry
        elif t["kind"] == "layers":
            report["layers"] = entry
    kl = geometry.pairwise_kl(geo.Q)
    report["claims"] = {
        "finetunes": finetune_claim(labels, kl, columns["kind"], columns["base"]),
        "lineages": lineage_claim(labels, kl, columns["lineage"]),
        "checkpoints": checkpoint_claim(checkpoints),
        "standard_errors": standard_error_claim(_reported_pairs(report)),
    }
    report["claims_hold"] = all(report["claims"][c]["holds"] for c in CLAIMS)
    return report


def _reported_pairs(report: dict) -> list[dict]:
    """Every KL estimate the printed report shows, as (a, b, kl_nats, se_nats)."""
    pairs = []
    for ft in report["finetunes"]:
        pairs += [{"a": ft["model"], "b": n["model"], "kl_nats": n["kl_nats"], "se_nats": n["se_nats"]}
                  for n in ft["neighbors"]]
        k = ft["kl_to_base"]
        pairs.append({"a": k["a"], "b": k["b"], "kl_nats": k["kl_nats"], "se_nats": k["se_nats"]})
    for s in report["seeds"]:
        pairs.append({"a": s["a"], "b": s["b"], "kl_nats": s["kl_nats"], "se_nats": s["se_nats"]})
    for path in (report["trajectory"], report["layers"]):
        if path:
            for (a, b), kl, se in zip(zip(path["labels"], path["labels"][1:]), path["kl_nats"], path["se_nats"]):
                pairs.append({"a": a, "b": b, "kl_nats": kl, "se_nats": se})
    return pairs


def _seed_pairs(models: Sequence[ZooModel], names: Sequence[str]) -> list[tuple[str, str]]:
    """(seed 0, seed 1) of each architecture, where both are in the map."""
    final = {}
    for m in models:
        if m.kind == "base" and m.seed in (0, 1):
            final.setdefault(m.family, {})[m.seed] = m.name
    return [(s[0], s[1]) for s in final.values() if 0 in s and 1 in s and s[0] in names and s[1] in names]


def format_report(report: dict) -> str:
    """The report as the short text the demo prints."""
    lines = [f"Map: {report['n_models']} rows x {report['n_texts']} texts in {report['map']}", ""]
    lines.append("Nearest neighbours of the fine-tunes (KL estimate, bits/byte ± SE):")
    for ft in report["finetunes"]:
        near = ", ".join(f"{n['model']} {format_pm(n['kl_bits_per_byte'], n['se_bits_per_byte'])}" for n in ft["neighbors"])
        verdict = "its base or a sibling fine-tune" if ft["nearest_is_base_or_sibling"] else "NOT its base or a sibling"
        lines.append(f"  {ft['model']} (fine-tune of {ft['base']}): {near}  -> nearest is {verdict}")
    traj = report.get("trajectory")
    if traj:
        lines += ["", f"KL between consecutive checkpoints of {traj['name']} (bits/byte ± SE):"]
        for (a, b), kl, se in zip(zip(traj["positions"], traj["positions"][1:]), traj["kl_bits_per_byte"],
                                  traj["se_bits_per_byte"]):
            lines.append(f"  step {a:>4} -> {b:<4} {format_pm(kl, se):>18}")
        lines.append("  -> " + ("shrinks as training goes on" if traj["shrinks"] else "does NOT shrink"))
    if report.get("seeds"):
        lines += ["", "KL between two seeds of the same architecture (bits/byte ± SE):"]
        for s in report["seeds"]:
            lines.append(f"  {s['a']} vs {s['b']}: {format_pm(s['kl_bits_per_byte'], s['se_bits_per_byte'])}")
    layers = report.get("layers")
    if layers:
        lines += ["", f"Logit lens of {layers['name']}: KL between adjacent layers (bits/byte ± SE):"]
        lines.append("  " + ", ".join(f"{a}->{b} {format_pm(kl, se)}" for (a, b), kl, se in
                                       zip(zip(layers["positions"], layers["positions"][1:]),
                                           layers["kl_bits_per_byte"], layers["se_bits_per_byte"])))
    claims = report.get("claims")
    if claims:
        lines += ["", "What the map shows (the method's claims on this zoo):"]
        for letter, key in zip("abcd", CLAIMS):
            claim = claims[key]
            lines.append(f"  ({letter}) {'holds' if claim['holds'] else 'FAILS'}: {claim['summary']}")
            if key == "lineages" and claim["misses"]:
                lines.append("      nearest outside the lineage: " + ", ".join(
                    f"{m['model']} -> {m['nearest']}" for m in claim["misses"]))
    return "\n".join(lines)
