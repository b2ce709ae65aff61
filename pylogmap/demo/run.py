"""`pylogmap demo`: a whole map built from nothing, offline, by the product's own code paths.

The steps, each one the real thing a user would run on real models:

1. the offline corpus (`zoo.load_corpus`) and, from its held-out slice, a text set made with the
   paper's chunk-and-sample recipe (`texts.make_texts`), saved as `DIR/texts.jsonl`;
2. the model zoo (`zoo.build_zoo`): tiny GPT-2 / Llama / GPT-NeoX models trained here, the
   checkpoints of one run, fine-tunes of one base, and SmolLM2-135M where installed;
3. scoring with the real engine (`scoring.score_models`) into `DIR/map.h5`, plus the logit lens
   of one model (`layers="all"`); the store's resume skips rows already scored;
4. the map (`mapping.compute_map`: clip, double-centre, t-SNE/PCA, neighbours);
5. a short report computed by the product's own functions (`mapping.neighbors_for`,
   `mapping.kl_between`, `analysis.trajectories.trajectories_map`), also written to
   `DIR/report.json`: the nearest neighbours of each fine-tune (its base and sibling fine-tunes),
   the KL between consecutive checkpoints (shrinking as training goes on), KL between seeds, the
   logit-lens layers;
6. the viewer (`pylogmap.viewer.app.main`), or with `view=False` its screenshot `DIR/map.png`.

Rerunning the demo on the same DIR reuses the trained models and the scored rows. Models are
scored with the zoo folder as the working directory and their folder names as specs, so the map's
labels are short (`llama-s0-folio1`, `neox-s0-step30`); to score more models into the demo's map
later, run `pylogmap score` from `DIR/models` as well.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pylogmap.errors import PylogmapError

#: Text-set sizes: texts of 256-512 bytes (the recipe's min/max) from the held-out slice. SmolLM2
#: (full size only) costs about 3 ms per token on two cores, most of the demo's time. The sizes
#: must differ: the quick and full zoos use the same model names, and only the text-set hash keeps
#: a full run from resuming a quick run's rows (the map file of the other size is replaced).
N_TEXTS = {True: 100, False: 96}
MAX_BYTES, MIN_BYTES = 512, 256
LENS_MODEL = "llama-s1"  # the model scored through the logit lens (one row per layer)
SELECT = "llama-s0-folio1"  # selected in the screenshot: its neighbours are drawn


@dataclass
class DemoResult:
    """Where the demo put things, and its report (the same dict as `DIR/report.json`)."""

    out_dir: Path
    map_path: Path
    png_path: Path | None
    report: dict = field(default_factory=dict)


@contextlib.contextmanager
def _working_directory(path: Path):
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


class _Stages:
    """Numbered progress lines with timings: '[3/6] scoring ... done in 12.3 s'."""

    def __init__(self, total: int, log: Callable[[str], None]):
        self.total, self.log, self.n = total, log, 0
        self.started = time.perf_counter()

    @contextlib.contextmanager
    def stage(self, title: str):
        self.n += 1
        self.log(f"[{self.n}/{self.total}] {title}")
        t0 = time.perf_counter()
        yield
        self.log(f"      done in {time.perf_counter() - t0:.1f} s")

    def elapsed(self) -> float:
        return time.perf_counter() - self.started


def make_text_set(corpus, *, quick: bool):
    """The demo's text set: the chunk-and-sample recipe on the held-out slice of the corpus."""
    from pylogmap.texts import make_texts

    n = N_TEXTS[quick]
    return make_texts(
        [(d.text, d.source) for d in corpus.heldout],
        max_bytes=MAX_BYTES, min_bytes=MIN_BYTES, sample_size=n, pool_size=n, seed=42,
        name=f"demo held-out {corpus.origin} ({n} texts of {MIN_BYTES + 1}-{MAX_BYTES} bytes)",
    )


def _prepare_map_path(map_path: Path, texts, state_path: Path, log) -> bool:
    """Whether scoring must replace `map_path`: only a map the demo itself made for another text
    set (a --quick run before a full one) is replaced; any other foreign file is an error."""
    if not map_path.exists():
        return False
    from pylogmap.store import open_map

    try:
        with open_map(map_path) as mf:
            existing = mf.text_hash
    except PylogmapError:
        existing = None
    if existing == texts.hash:
        return False
    if existing is not None and existing in _demo_text_hashes(state_path):
        log(f"      {map_path} holds the demo's map of another size; replacing it")
        return True
    raise PylogmapError(
        f"{map_path} exists and is not a map of this demo's text set, so the demo will not overwrite it; "
        f"choose another output folder with -o DIR, or delete {map_path}."
    )


def _demo_text_hashes(state_path: Path) -> list[str]:
    """Text-set hashes of the maps this demo has scored into DIR/map.h5 (DIR/demo.json)."""
    try:
        return list(json.loads(state_path.read_text()).get("text_hashes", []))
    except (OSError, ValueError, AttributeError):
        return []


def _remember_text_hash(state_path: Path, text_hash: str) -> None:
    hashes = _demo_text_hashes(state_path)
    if text_hash not in hashes:
        tmp = state_path.with_name(state_path.name + ".tmp")
        tmp.write_text(json.dumps({"text_hashes": hashes + [text_hash]}))
        os.replace(tmp, state_path)


def _annotations(zoo_models, keys) -> dict:
    """Per-row columns for the map (family, kind, seed, step, base), matched by row name."""
    import numpy as np

    by_name = {m.name: m for m in zoo_models}
    by_name.update({Path(m.path).name: m for m in zoo_models})
    cols: dict[str, list] = {"family": [], "kind": [], "seed": [], "step": [], "base": []}
    for key in keys:
        m = by_name.get(Path(key.name).name)
        lens = key.layer >= 0
        cols["family"].append(m.family if m else "other")
        cols["kind"].append("logit lens" if lens else (m.kind if m else "other"))
        cols["seed"].append(float(m.seed) if m and m.seed >= 0 else np.nan)
        cols["step"].append(float(m.step) if m and m.step >= 0 else np.nan)
        cols["base"].append(m.base if m else "")
    return {
        "family": np.array(cols["family"], dtype=object),
        "kind": np.array(cols["kind"], dtype=object),
        "seed": np.array(cols["seed"], dtype=np.float64),
        "step": np.array(cols["step"], dtype=np.float64),
        "base": np.array(cols["base"], dtype=object),
    }


def build_report(map_path: Path, zoo) -> dict:
    """The demo's findings, computed by the product's functions on the map file."""
    from pylogmap import mapping
    from pylogmap.analysis import _mapdata, trajectories
    from pylogmap.store import open_map

    report: dict = {"map": str(map_path), "corpus": zoo.corpus.origin, "finetunes": [], "trajectory": None,
                    "layers": None, "seeds": []}
    finetunes = [m for m in zoo.models if m.kind == "finetune"]
    with open_map(map_path) as mf:
        names = mf.model_names()
        report["n_models"], report["n_texts"] = int(mf.n_models), int(mf.n_texts)
        for ft in finetunes:
            res = mapping.neighbors_for(mf, ft.name, k=3)
            family = {ft.base} | {m.name for m in finetunes if m.base == ft.base and m.name != ft.name}
            nearest = res["neighbors"][0]
            nearest_name = names[nearest["row"]]
            report["finetunes"].append({
                "model": ft.name,
                "base": ft.base,
                "neighbors": [{k: n[k] for k in ("model", "kl_nats", "se_nats", "kl_bits_per_byte",
                                                  "se_bits_per_byte")} for n in res["neighbors"]],
                "nearest": nearest_name,
                "nearest_is_base_or_sibling": nearest_name in family,
                "kl_to_base": mapping.kl_between(mf, ft.name, ft.base),
            })
        for a, b in _seed_pairs(zoo.models, names):
            report["seeds"].append(mapping.kl_between(mf, a, b))
    data = _mapdata.load(map_path)
    run = zoo.config.checkpoint_run
    found = trajectories.trajectories_map(data)["trajectories"]
    for t in found:
        cons = t["consecutive"]
        entry = {
            "name": t["name"], "labels": list(t["labels"]), "positions": [int(p) for p in t["positions"]],
            "kl_nats": [float(x) for x in cons["kl_nats"]], "se_nats": [float(x) for x in cons["se_nats"]],
            "kl_bits_per_byte": [float(x) for x in cons["kl_bpb"]],
            "se_bits_per_byte": [float(x) for x in cons["se_bpb"]],
        }
        if t["kind"] == "checkpoints" and t["name"] == run:
            kl = entry["kl_nats"]
            entry["shrinks"] = bool(kl[-1] < kl[0])
            entry["monotone"] = bool(all(x > y for x, y in zip(kl, kl[1:])))
            report["trajectory"] = entry
        elif t["kind"] == "layers":
            report["layers"] = entry
    return report


def _seed_pairs(models, names) -> list[tuple[str, str]]:
    """(seed 0, seed 1) of each architecture, where both are in the map."""
    final = {}
    for m in models:
        if m.kind == "base" and m.seed in (0, 1):
            final.setdefault(m.family, {})[m.seed] = m.name
    return [(s[0], s[1]) for s in final.values() if 0 in s and 1 in s and s[0] in names and s[1] in names]


def format_report(report: dict) -> str:
    """The report as the short text the demo prints."""
    lines = [f"Map: {report['n_models']} rows x {report['n_texts']} texts in {report['map']}", ""]
    lines.append("Nearest neighbours of the fine-tunes (KL estimate, bits/byte +- SE):")
    for ft in report["finetunes"]:
        near = ", ".join(f"{n['model']} {n['kl_bits_per_byte']:.3f}+-{n['se_bits_per_byte']:.3f}" for n in ft["neighbors"])
        verdict = "its base or a sibling fine-tune" if ft["nearest_is_base_or_sibling"] else "NOT its base or a sibling"
        lines.append(f"  {ft['model']} (fine-tune of {ft['base']}): {near}  -> nearest is {verdict}")
    traj = report.get("trajectory")
    if traj:
        lines += ["", f"KL between consecutive checkpoints of {traj['name']} (bits/byte +- SE):"]
        for (a, b), kl, se in zip(zip(traj["positions"], traj["positions"][1:]), traj["kl_bits_per_byte"],
                                  traj["se_bits_per_byte"]):
            lines.append(f"  step {a:>4} -> {b:<4} {kl:8.4f} +- {se:.4f}")
        lines.append("  -> " + ("shrinks as training goes on" if traj["shrinks"] else "does NOT shrink"))
    if report.get("seeds"):
        lines += ["", "KL between two seeds of the same architecture (bits/byte):"]
        for s in report["seeds"]:
            lines.append(f"  {s['a']} vs {s['b']}: {s['kl_bits_per_byte']:.3f} +- {s['se_bits_per_byte']:.3f}")
    layers = report.get("layers")
    if layers:
        lines += ["", f"Logit lens of {layers['name']}: KL between adjacent layers (bits/byte):"]
        lines.append("  " + ", ".join(f"{a}->{b} {kl:.3f}" for (a, b), kl in
                                       zip(zip(layers["positions"], layers["positions"][1:]), layers["kl_bits_per_byte"])))
    return "\n".join(lines)


def run_demo(
    out_dir: str | os.PathLike = "demo-out",
    *,
    quick: bool = False,
    view: bool = True,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> DemoResult:
    """Build the demo map in `out_dir` (see the module docstring) and return where it is."""
    from pylogmap.demo import zoo as zoo_mod

    out = Path(out_dir).resolve()
    if out.exists() and not out.is_dir():
        raise PylogmapError(f"-o {out_dir}: {out} is a file, not a folder; give a folder for the demo's outputs.")
    out.mkdir(parents=True, exist_ok=True)
    map_path, png_path = out / "map.h5", out / "map.png"
    state_path = out / "demo.json"
    models_dir = out / ("models-quick" if quick else "models")
    stages = _Stages(6, log)
    log(f"pylogmap demo: building a map {'(quick size) ' if quick else ''}in {out}")

    with stages.stage("corpus and text set (chunk-and-sample recipe on the held-out slice)"):
        corpus = zoo_mod.load_corpus()
        log(f"      {corpus.describe()}")
        texts = make_text_set(corpus, quick=quick)
        texts.to_jsonl(out / "texts.jsonl")
        log(f"      {len(texts)} texts, mean {texts.mean_bytes:.0f} bytes, {texts.hash[:19]}... -> {out / 'texts.jsonl'}")
        replace = _prepare_map_path(map_path, texts, state_path, log)  # refuse a foreign file before any work

    with stages.stage(f"model zoo in {models_dir} (trained here with transformers; reused when present)"):
        zoo = zoo_mod.build_zoo(models_dir, quick=quick, corpus=corpus, progress=progress,
                                log=lambda line: log("    " + line))

    with stages.stage(f"scoring {len(zoo.models)} models + the logit lens of {LENS_MODEL} into {map_path}"):
        from pylogmap.scoring import score_models
        from pylogmap.store import open_map

        # Models (re)trained by this run replace any rows scored before under the same name (a
        # zoo rebuilt after a change of recipe); the others resume from the file.
        fresh = [_spec_in(models_dir, m) for m in zoo.models if m.kind != "pretrained" and m.run in zoo.trained]
        kept = [_spec_in(models_dir, m) for m in zoo.models if m.kind != "pretrained" and m.run not in zoo.trained]
        pretrained = [_spec_in(models_dir, m) for m in zoo.models if m.kind == "pretrained"]
        _remember_text_hash(state_path, texts.hash)  # before scoring: a killed run's map stays ours
        with _working_directory(models_dir), zoo_mod.quiet_transformers():
            # One intra-op thread for the tiny models (see ZooConfig.threads); torch's default
            # for the 135M-parameter SmolLM2, whose matrices are large enough to share out.
            with zoo_mod.torch_threads(1):
                if fresh:
                    score_models(texts, fresh, map_path, force=True, progress=progress)
                if kept:
                    score_models(texts, kept, map_path, force=replace and not fresh, progress=progress)
                score_models(texts, [LENS_MODEL], map_path, layers="all", force=LENS_MODEL in zoo.trained,
                             progress=progress)
            if pretrained:  # small batches on a CPU: the same speed, and a progress bar that moves
                score_models(texts, pretrained, map_path, progress=progress, batch_tokens=2048)
        with open_map(map_path, mode="a") as mf:
            failed = [label for label, st in zip(mf.labels(), mf.status()) if st != "ok"]
            if failed:
                raise PylogmapError(
                    f"the scorer could not score {', '.join(failed)}; see 'pylogmap info {map_path}' for the "
                    f"errors, then rerun the demo (finished rows are kept)."
                )
            mf.set_annotations(_annotations(zoo.models, mf.keys()))

    with stages.stage("the map: clip, double-centre, t-SNE and PCA, nearest neighbours"):
        from pylogmap.mapping import compute_map

        compute_map(map_path, k=5, progress=progress)

    with stages.stage("report (neighbours, KL along checkpoints and layers)"):
        report = build_report(map_path, zoo)
        report["elapsed_s"] = round(stages.elapsed(), 1)
        (out / "report.json").write_text(json.dumps(report, indent=1, default=float))
        log("")
        log(format_report(report))
        log("")

    shown = None
    with stages.stage("viewer" + ("" if view else f" screenshot -> {png_path}")):
        shown = _show(map_path, png_path, view=view, log=log)
    log(f"pylogmap demo: finished in {stages.elapsed():.0f} s. Next: pylogmap view {map_path}; "
        f"pylogmap neighbors {map_path} {SELECT}; pylogmap trajectory {map_path}")
    return DemoResult(out, map_path, shown, report)


def _spec_in(models_dir: Path, model) -> str:
    """The spec the scorer gets: the folder name (scored from inside `models_dir`, so labels are
    short); the SmolLM2 GGUF through a link in `models_dir` when the system allows links."""
    path = Path(model.path)
    if path.parent == models_dir:
        return path.name
    link = models_dir / path.name
    try:
        if not link.exists():
            link.symlink_to(path)
        return link.name
    except OSError:
        return str(path)


def _show(map_path: Path, png_path: Path, *, view: bool, log) -> Path | None:
    """Open the viewer; without a display (or with view=False) write its screenshot instead."""
    from pylogmap.viewer import require_qt

    require_qt()
    from pylogmap.viewer.app import main

    if view:
        try:
            main(str(map_path), select=SELECT)
            return None
        except PylogmapError as err:
            if "no display" not in str(err):
                raise
            log(f"      no display here, so the viewer writes {png_path} instead "
                f"(open the map on a desktop with: pylogmap view {map_path})")
    main(str(map_path), screenshot=str(png_path), select=SELECT)
    if not png_path.is_file():
        raise PylogmapError(f"the viewer did not write {png_path}; run 'pylogmap view {map_path} --screenshot OUT.png' to see why.")
    return png_path
