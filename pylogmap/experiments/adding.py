"""Adding models to an existing map by scoring them on its selected texts only (resampling paper).

`pylogmap resample FILE --target-error TAU` stores a weighted selection of the map's texts; a new
model scored on that selection alone (a fraction of the full set) gets KL estimates to every
existing model (`pylogmap.analysis.place_models`) and a place among its nearest neighbours' t-SNE
coordinates (`place_in_2d`), without moving the existing map. Scoring is the real scorer's
(`pylogmap.scoring.score_models`), into a resumable side file.
"""

from __future__ import annotations

import numpy as np

from pylogmap.analysis import (
    SELECTED_TEXTS,
    SELECTED_WEIGHTS,
    place_in_2d,
    place_models,
    read_map,
    selection_path,
)
from pylogmap.errors import PylogmapError
from pylogmap.mapping import geometry
from pylogmap.scoring import is_local, local_path, row_names_in, score_models
from pylogmap.store import open_map
from pylogmap.texts import TextSet


def add_models(
    path,
    models: list[str],
    *,
    revision: str | None = None,
    dtype: str = "auto",
    device: str = "auto",
    k: int = 10,
    progress: bool = True,
) -> dict:
    """Place new models on an existing map, scoring only its stored text selection.

    1. reads the selection written by `pylogmap resample --target-error` (indices, weights, tau);
    2. scores the new models on those texts with `pylogmap.scoring.score_models` into the side file
       `selection_path(path)` (resumable);
    3. appends them to the map as rows that are scored on the selected texts only (NaN
       elsewhere, so `pylogmap map` keeps them out of the full-set geometry);
    4. estimates their KL to every fully scored model from the weighted selection
       (`place_models`), keeps the `k` nearest, and places them in 2-D among their nearest
       neighbours' t-SNE coordinates (`place_in_2d`) when the map has them.
    Results: annotation columns `placed_x`, `placed_y`, `nearest`, `nearest_kl_bpb` and the
    derived datasets `placed/rows`, `placed/index`, `placed/kl_nats`.
    """
    with open_map(path, mode="r") as m:
        sel = m.read_derived(SELECTED_TEXTS)
        wts = m.read_derived(SELECTED_WEIGHTS)
        if sel is None or wts is None:
            raise PylogmapError(
                f"{path} has no text selection; run 'pylogmap resample {path} --target-error 0.05' first."
            )
        idx = np.asarray(sel[0], dtype=np.int64)
        weights = np.asarray(wts[0], dtype=np.float64)
        attrs = sel[1]
        data = read_map(m, str(path))
        full_texts = m.texts()
        tsne = m.read_derived("tsne")
    if int(attrs.get("n_texts_full", data.n_texts)) != data.n_texts or len(idx) != len(weights):
        raise PylogmapError(f"the text selection stored in {path} does not fit its text set; rerun 'pylogmap resample'.")
    tau = float(attrs["clip_tau"])
    used = np.nonzero(data.used)[0]
    if len(used) < 2:
        raise PylogmapError(f"{path} has fewer than 2 fully scored models to place new ones among.")

    subset = TextSet.from_texts(
        [full_texts.texts[i] for i in idx],
        sources=[full_texts.sources[i] for i in idx],
        meta=[{**full_texts.meta[i], "map_index": int(i)} for i in idx],
        name=f"{full_texts.name or 'texts'} (selection of {len(idx)})",
    )
    side = selection_path(path)
    score_models(subset, list(models), side, revision=revision, dtype=dtype, device=device, progress=progress)

    rev = revision or ""
    row_name = row_names_in(side, list(models))  # local folders' rows are named by the folder
    with open_map(side, mode="r") as s:
        table = s.models_table()
        s_names = [str(x) for x in table["name"]]
        s_revs = [str(x) for x in table["revision"]]
        s_layers = np.asarray(table["layer"])
        s_status = [str(x) for x in table["status"]]
        rows = []
        for name in models:
            hit = [i for i in range(len(s_names))
                   if s_names[i] == row_name[name] and s_revs[i] == rev and s_layers[i] == -1]
            if not hit or s_status[hit[0]] != "ok":
                err = str(table["error"][hit[0]]) if hit else "not scored"
                raise PylogmapError(f"{name} could not be scored on the selected texts ({err}).")
            rows.append(hit[0])
        L_new = np.asarray(s.loglik(rows=np.array(rows)), dtype=np.float64)
        nt_new = np.asarray(s.ntokens(rows=np.array(rows)))
    if not np.all(np.isfinite(L_new)):
        raise PylogmapError("a new model produced non-finite log-likelihoods on the selected texts; see the side file.")

    kl = place_models(data.L[used][:, idx], L_new, weights, tau, data.n_texts)
    kk = min(k, len(used))
    order = np.argsort(kl, axis=1, kind="stable")[:, :kk]
    near_rows = used[order]
    near_kl = np.take_along_axis(kl, order, axis=1)
    mean_bytes = float(np.mean(data.text_bytes))
    xy = None
    if tsne is not None:
        xy = place_in_2d(kl, np.asarray(tsne[0], dtype=np.float64)[used])

    # Append the new models as rows scored on the selected texts only.
    M_old = data.n_models
    L_full = np.full((len(models), data.n_texts), np.nan, dtype=np.float32)
    L_full[:, idx] = L_new
    nt_full = np.full((len(models), data.n_texts), -1, dtype=np.int32)
    nt_full[:, idx] = nt_new
    names = [row_name[name] for name in models]  # as in the side file
    keys = [(name, rev, -1) for name in names]
    placed = {"placed_by": "pylogmap add", "selection_size": int(len(idx))}
    metas = [dict(placed, **({"path": local_path(spec)} if is_local(spec) else {})) for spec in models]
    with open_map(path, mode="a") as m:
        m.append_rows(keys, L_full, nt_full, metas)
        labels = m.labels()
        key_rows = [m.find_row(lb) for lb in ([n if not rev else f"{n}@{rev}" for n in names])]
        M = m.n_models
        cols = {c: np.full(M, np.nan) for c in ("placed_x", "placed_y", "nearest_kl_bpb")}
        nearest = np.array([""] * M, dtype=object)
        old_ann = m.annotations()
        for c in ("placed_x", "placed_y", "nearest_kl_bpb", "nearest"):
            if c in old_ann:  # keep earlier placements
                prev = np.asarray(old_ann[c])
                if c == "nearest":
                    nearest[: len(prev)] = prev
                else:
                    cols[c][: len(prev)] = prev
        for j, r in enumerate(key_rows):
            if xy is not None:
                cols["placed_x"][r], cols["placed_y"][r] = xy[j]
            cols["nearest_kl_bpb"][r] = float(geometry.to_bits_per_byte(near_kl[j, 0], mean_bytes))
            nearest[r] = labels[near_rows[j, 0]]
        m.set_annotations({**cols, "nearest": nearest})
        m.update_map({
            "placed/rows": (np.array(key_rows, dtype=np.int64), {"k": kk, "clip_tau": tau, "n_selected": int(len(idx))}),
            "placed/index": (near_rows.astype(np.int64), {}),
            "placed/kl_nats": (near_kl, {"mean_bytes": mean_bytes}),
        })
    return {
        "models": list(models),
        "rows": key_rows,
        "n_selected_texts": int(len(idx)),
        "n_texts": data.n_texts,
        "side_file": str(side),
        "neighbors": [
            [{"label": labels[r], "kl_nats": float(d), "kl_bpb": float(geometry.to_bits_per_byte(d, mean_bytes))}
             for r, d in zip(near_rows[j], near_kl[j])]
            for j in range(len(models))
        ],
        "xy": xy,
        "previous_rows": M_old,
    }
