"""`pylogmap demo`: a whole map built from nothing, offline, by the product's own code paths.

The steps, each one the real thing a user would run on real models:

1. the offline corpus (`corpus.load_corpus`) and, from its held-out slice, a text set made with
   the paper's chunk-and-sample recipe (`texts.make_texts`), saved as `DIR/texts.jsonl`; a map
   file already at `DIR/map.h5` is checked first (`state.prepare_map_path`);
2. the model zoo (`zoo.build_zoo`): tiny GPT-2 / Llama / GPT-NeoX models trained here in
   lineages (bases, the checkpoints of one run, gentle fine-tunes of two bases), and SmolLM2-135M
   where installed;
3. scoring with the real engine (`scoring.score_models`) into `DIR/map.h5`, plus the logit lens
   of one model (`layers="all"`); the store's resume skips rows already scored;
4. the map (`mapping.compute_map`: clip, double-centre, t-SNE/PCA, neighbours);
5. a short report computed by the product's own functions (`report.build_report`), also
   written to `DIR/report.json`: the nearest neighbours of each fine-tune, the KL between
   consecutive checkpoints, KL between seeds, the logit-lens layers, and whether the method's
   four claims hold on this map (`claims`);
6. the figure `DIR/map.png` (`analysis.plot_map`, what `pylogmap plot` draws: no Qt needed),
   coloured by lineage with one marker shape per kind of model, then the viewer (`pylogmap.viewer.app.main`) unless `view=False` or
   there is no display.

Rerunning the demo on the same DIR reuses the trained models and the scored rows. Models are
scored with the zoo folder as the working directory and their folder names as specs, so the map's
labels are short (`llama-s0-ft1`, `neox-s0-step160`); to score more models into the demo's map
later, run `pylogmap score` from `DIR/models` as well.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pylogmap.analysis import plot_map
from pylogmap.demo.config import ZooConfig
from pylogmap.demo.corpus import Corpus, load_corpus
from pylogmap.demo.report import build_report, format_report
from pylogmap.demo.runtime import quiet_transformers, torch_threads
from pylogmap.demo.state import prepare_map_path, remember_text_hash
from pylogmap.demo.zoo import Zoo, ZooModel, build_zoo
from pylogmap.errors import PylogmapError
from pylogmap.mapping import compute_map
from pylogmap.scoring import score_models
from pylogmap.store import RowKey, open_map
from pylogmap.texts import TextSet, make_texts
from pylogmap.viewer import require_qt

#: Text-set sizes: texts of 256-512 bytes (the recipe's min/max) from the held-out slice. SmolLM2
#: (full size only) costs about 3 ms per token on two cores, most of the demo's time. The sizes
#: must differ: the quick and full zoos use the same model names, and only the text-set hash keeps
#: a full run from resuming a quick run's rows (the map file of the other size is replaced).
N_TEXTS = {True: 100, False: 96}
MAX_BYTES, MIN_BYTES = 512, 256
LENS_MODEL = "llama-s1"  # the model scored through the logit lens (one row per layer)
SELECT = "llama-s0-ft1"  # selected in the viewer: its neighbours are drawn
KINDS = ("base", "finetune", "checkpoint", "logit lens", "pretrained")  # the figure's marker shapes, in order


@dataclass
class DemoResult:
    """Where the demo put things, and its report (the same dict as `DIR/report.json`)."""

    out_dir: Path
    map_path: Path
    png_path: Path  # the figure, map.png
    report: dict = field(default_factory=dict)


@contextlib.contextmanager
def _working_directory(path: Path) -> Iterator[None]:
    """Run the block in `path`, then go back to the previous working directory."""
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
    def stage(self, title: str) -> Iterator[None]:
        self.n += 1
        self.log(f"[{self.n}/{self.total}] {title}")
        t0 = time.perf_counter()
        yield
        self.log(f"      done in {time.perf_counter() - t0:.1f} s")

    def elapsed(self) -> float:
        return time.perf_counter() - self.started


def make_text_set(corpus: Corpus, *, quick: bool) -> TextSet:
    """The demo's text set: the chunk-and-sample recipe on the held-out slice of the corpus."""
    n = N_TEXTS[quick]
    return make_texts(
        [(d.text, d.source) for d in corpus.heldout],
        max_bytes=MAX_BYTES, min_bytes=MIN_BYTES, sample_size=n, pool_size=n, seed=42,
        name=f"demo held-out {corpus.origin} ({n} texts of {MIN_BYTES + 1}-{MAX_BYTES} bytes)",
    )


def _annotations(zoo_models: Sequence[ZooModel], keys: Sequence[RowKey]) -> dict:
    """Per-row columns for the map (family, lineage, kind, seed, step, base), matched by row
    name; the logit-lens rows of a model belong to its lineage."""
    by_name = {m.name: m for m in zoo_models}
    by_name.update({Path(m.path).name: m for m in zoo_models})
    cols: dict[str, list] = {"family": [], "lineage": [], "kind": [], "seed": [], "step": [], "base": []}
    for key in keys:
        m = by_name.get(Path(key.name).name)
        lens = key.layer >= 0
        cols["family"].append(m.family if m else "other")
        cols["lineage"].append(m.lineage if m else "other")
        cols["kind"].append("logit lens" if lens else (m.kind if m else "other"))
        cols["seed"].append(float(m.seed) if m and m.seed >= 0 else np.nan)
        cols["step"].append(float(m.step) if m and m.step >= 0 else np.nan)
        cols["base"].append(m.base if m else "")
    text = ("family", "lineage", "kind", "base")
    return {name: np.array(col, dtype=object if name in text else np.float64) for name, col in cols.items()}


def run_demo(
    out_dir: str | os.PathLike = "demo-out",
    *,
    quick: bool = False,
    view: bool = True,
    progress: bool = True,
    log: Callable[[str], None] = print,
    config: ZooConfig | None = None,
    corpus: Corpus | None = None,
) -> DemoResult:
    """Build the demo map in `out_dir` (see the module docstring) and return where it is.

    `config` replaces the zoo's sizes for `quick` (`ZooConfig.make`), `corpus` the offline corpus
    (`load_corpus`); the tests use them to check the claims without SmolLM2 and on the fallback
    corpus."""
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
        corpus = corpus or load_corpus()
        log(f"      {corpus.describe()}")
        texts = make_text_set(corpus, quick=quick)
        texts.to_jsonl(out / "texts.jsonl")
        log(f"      {len(texts)} texts, mean {texts.mean_bytes:.0f} bytes, {texts.hash[:19]}... -> {out / 'texts.jsonl'}")
        replace = prepare_map_path(map_path, texts, state_path, log)  # refuse a foreign file before any work

    with stages.stage(f"model zoo in {models_dir} (trained here with transformers; reused when present)"):
        zoo = build_zoo(models_dir, quick=quick, config=config, corpus=corpus, progress=progress,
                        log=lambda line: log("    " + line))

    with stages.stage(f"scoring {len(zoo.models)} models + the logit lens of {LENS_MODEL} into {map_path}"):
        # Models (re)trained by this run replace any rows scored before under the same name (a
        # zoo rebuilt after a change of recipe); the others resume from the file.
        specs = {m.name: _spec_in(models_dir, m) for m in zoo.models}  # the rows' names in the map
        fresh = [specs[m.name] for m in zoo.models if m.kind != "pretrained" and m.run in zoo.trained]
        kept = [specs[m.name] for m in zoo.models if m.kind != "pretrained" and m.run not in zoo.trained]
        pretrained = [specs[m.name] for m in zoo.models if m.kind == "pretrained"]
        remember_text_hash(state_path, texts.hash)  # before scoring: a killed run's map stays ours
        with _working_directory(models_dir), quiet_transformers():
            # One intra-op thread for the tiny models (see ZooConfig.threads); torch's default
            # for the 135M-parameter SmolLM2, whose matrices are large enough to share out.
            with torch_threads(1):
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
        compute_map(map_path, k=5, progress=progress)

    with stages.stage("report (neighbours, KL along checkpoints and layers, the method's claims)"):
        report = build_report(map_path, zoo)
        report["elapsed_s"] = round(stages.elapsed(), 1)
        (out / "report.json").write_text(json.dumps(report, indent=1, default=float))
        log("")
        log(format_report(report))
        log("")

    with stages.stage(f"figure -> {png_path}" + (", then the viewer" if view else "")):
        figure = plot_map(map_path, png_path, color="lineage", marker="kind", marker_order=list(KINDS),
                          labels=figure_labels(zoo, specs),
                          title=f"pylogmap demo: {len(zoo.models)} models in {len(_lineages(zoo))} lineages, "
                                f"and the logit lens of {LENS_MODEL}")
        log(f"      labelled: {', '.join(figure.labels)}")
        if view:
            _view(map_path, png_path, log=log)
    log(f"pylogmap demo: finished in {stages.elapsed():.0f} s. Next: pylogmap view {map_path}; "
        f"pylogmap neighbors {map_path} {SELECT}; pylogmap plot {map_path} -o map.pdf")
    return DemoResult(out, map_path, png_path, report)


def _lineages(zoo: Zoo) -> list[str]:
    return list(dict.fromkeys(m.lineage for m in zoo.models))


def figure_labels(zoo: Zoo, specs: dict[str, str]) -> list[str]:
    """The rows the figure names (by their names in the map, `specs`): every lineage's base, the
    first checkpoint of each run and the embedding layer of the logit lens (where the arrows start)."""
    names = [specs[m.name] for m in zoo.models if m.kind in ("base", "pretrained")]
    firsts: dict[str, str] = {}
    for m in zoo.models:
        if m.kind == "checkpoint":
            firsts.setdefault(m.run, specs[m.name])
    return names + list(firsts.values()) + [f"{LENS_MODEL}#L0"]


def _spec_in(models_dir: Path, model: ZooModel) -> str:
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


def _view(map_path: Path, png_path: Path, *, log: Callable[[str], None]) -> None:
    """Open the viewer on the map; without a display, say where the figure is instead."""
    require_qt()
    from pylogmap.viewer.app import main  # Qt: imported only when the viewer is shown

    try:
        main(str(map_path), select=SELECT)
    except PylogmapError as err:
        if "no display" not in str(err):
            raise
        log(f"      no display here, so no viewer window: the figure is {png_path} "
            f"(open the map on a desktop with: pylogmap view {map_path})")
