"""`pylogmap plot`: the map as a publication figure (PNG, PDF, SVG), its labels, colours and errors.

The maps here are written through the store (a synthetic population with a checkpoint run, and
one without coordinates) and mapped with the real map code; the figures are read back as files:
the PNG header, the PDF's structure, the SVG as XML (its text stays text, so the labels asked for
can be found in it).
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from pylogmap.analysis import mapfigure  # noqa: E402
from pylogmap.cli import main  # noqa: E402
from pylogmap.mapping import (  # noqa: E402
    FAMILY_COLORS,
    MAX_LEGEND_CATEGORIES,
    OTHER_CATEGORY,
    category_colors,
    compute_map,
    family_order,
    order_by_count,
)
from pylogmap.store import MapFile  # noqa: E402
from pylogmap.testing import synthetic_population, synthetic_texts  # noqa: E402

RUN = "org/pythia-like"
STEPS = (100, 200, 300, 400)


def write_map(path: Path, n_models: int = 24, *, mapped: bool = True) -> Path:
    """A synthetic population (five published families, `family` and `kind` annotations, sizes)
    plus one training run scored at four checkpoints that converge onto its last member."""
    pop = synthetic_population(n_models, 80, seed=3)
    keys = [(name, "", -1) for name in pop.names]
    rows = [pop.L[i] for i in range(n_models)]
    rng = np.random.default_rng(0)
    target = pop.L[0]
    for t, step in enumerate(STEPS):
        keys.append((RUN, f"step{step}", -1))
        rows.append(target + (3 - t) * 40 * rng.standard_normal(target.shape).astype(np.float32))
    m = len(keys)
    meta = {"n_params": np.array([int(1e8 * (1 + i % 7) ** 2) for i in range(m)], dtype=np.int64),
            "step": np.array([-1] * n_models + list(STEPS), dtype=np.int64)}
    families = np.array(list(pop.families) + [pop.families[0]] * len(STEPS), dtype=object)
    kinds = np.array(["base" if i % 3 else "finetune" for i in range(n_models)] + ["checkpoint"] * len(STEPS), dtype=object)
    MapFile.create_with_rows(path, synthetic_texts(pop.n_bytes, seed=3), keys, np.stack(rows), None, meta,
                             annotations={"family": families, "kind": kinds,
                                          "quality": np.append(pop.quality, [1.0] * len(STEPS))}).close()
    if mapped:
        compute_map(path, k=3, progress=False)
    return path


@pytest.fixture(scope="module")
def small_map(tmp_path_factory) -> Path:
    return write_map(tmp_path_factory.mktemp("plot") / "map.h5")


def labels_in_svg(path: Path) -> list[str]:
    """Every text of an SVG figure (matplotlib writes <text> elements with svg.fonttype 'none')."""
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")
    return ["".join(el.itertext()) for el in root.iter() if el.tag.endswith("text")]


# ------------------------------------------------------------------------------------ the command


def test_png_pdf_and_svg_are_valid_files(small_map, tmp_path, capsys):
    for ext in ("png", "pdf", "svg"):
        out = tmp_path / f"map.{ext}"
        assert main(["plot", str(small_map), "-o", str(out)]) == 0
        data = out.read_bytes()
        if ext == "png":
            assert data[:8] == b"\x89PNG\r\n\x1a\n"
            width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
            assert width >= 1000 and height >= 700  # 7 x 5 inches at 200 dpi
        elif ext == "pdf":
            assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
        else:
            texts = labels_in_svg(out)
            assert any(t.startswith("28 language models") for t in texts), texts  # the title
            assert any("N = 80 texts" in t and "tau" in t for t in texts)  # the caption line
    assert "wrote" in capsys.readouterr().out


def test_labels_asked_for_are_drawn_and_reported(small_map, tmp_path, capsys):
    out = tmp_path / "labelled.svg"
    names = ["synthetic/llama-2-00", f"{RUN}@step400"]
    assert main(["plot", str(small_map), "-o", str(out), "--label", names[0], "--label", names[1]]) == 0
    texts = labels_in_svg(out)
    for name in names:
        assert name in texts
    assert f"labelled: {names[0]}, {names[1]}" in capsys.readouterr().out


def test_legend_counts_and_the_viewers_colours(small_map, tmp_path):
    data = mapfigure.read_figure_data(small_map)
    counts = dict(zip(*np.unique(data.categories, return_counts=True)))
    out = tmp_path / "legend.svg"
    mapfigure.plot_map(small_map, out)
    texts, svg = labels_in_svg(out), out.read_text()
    for fam, n in counts.items():
        assert f"{fam} ({n})" in texts
        assert FAMILY_COLORS[fam] in svg  # the published classes keep the viewer's colours


def test_automatic_labels_cover_every_family_and_never_overlap(tmp_path):
    for n in (24, 240):
        path = write_map(tmp_path / f"m{n}.h5", n)
        fig = mapfigure.plot_map(path, tmp_path / f"m{n}.png")
        data = mapfigure.read_figure_data(path)
        labelled = {data.categories[data.labels.index(label)] for label in fig.labels}
        assert labelled == set(data.categories)
        boxes = fig.label_boxes
        assert len(boxes) == len(fig.labels)
        for i, a in enumerate(boxes):
            for b in boxes[i + 1:]:
                assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), (a, b)
    none = mapfigure.plot_map(path, tmp_path / "none.png", per_category=0)
    assert none.labels == []


def test_checkpoints_are_drawn_as_arrows_in_order(small_map, tmp_path):
    data = mapfigure.read_figure_data(small_map)
    [traj] = data.trajectories
    assert [data.labels[i] for i in traj] == [f"{RUN}@step{s}" for s in STEPS]
    fig = mapfigure.plot_map(small_map, tmp_path / "t.png")
    assert fig.n_arrows == len(STEPS) - 1
    assert mapfigure.plot_map(small_map, tmp_path / "t2.png", trajectories=False).n_arrows == 0


def test_colour_by_any_column_and_size_by_parameters(small_map, tmp_path):
    assert main(["plot", str(small_map), "-o", str(tmp_path / "kind.svg"), "--color", "kind"]) == 0
    assert "checkpoint (4)" in labels_in_svg(tmp_path / "kind.svg")
    assert main(["plot", str(small_map), "-o", str(tmp_path / "shapes.svg"), "--marker", "kind"]) == 0
    texts = labels_in_svg(tmp_path / "shapes.svg")
    assert {"family", "kind", "checkpoint (4)"} <= set(texts)  # a block of shapes after the colours
    shapes, table = mapfigure.marker_shapes(np.array(["b", "a", "a", "c"]), order=["c"])
    assert table == {"c": "o", "a": "^", "b": "s"} and list(shapes) == ["s", "^", "^", "o"]
    assert main(["plot", str(small_map), "-o", str(tmp_path / "x.png"), "--marker", "quality"]) == 2
    assert main(["plot", str(small_map), "-o", str(tmp_path / "q.png"), "--color", "quality", "--size-by-params"]) == 0
    assert main(["plot", str(small_map), "-o", str(tmp_path / "pca.pdf"), "--embedding", "pca",
                 "--title", "A title", "--no-trajectories"]) == 0
    sizes = mapfigure.param_areas(np.array([1e8, np.nan, 1e9, 1e10]), 20.0)
    assert sizes[1] == 20.0 and sizes[0] < sizes[2] < sizes[3]


def test_defaults_suit_twenty_and_a_thousand_models():
    (a20, alpha20, edge20), (a1k, alpha1k, edge1k) = mapfigure.point_style(20), mapfigure.point_style(1000)
    assert a20 > a1k and alpha20 > alpha1k and edge20 > edge1k == 0.0
    assert mapfigure.point_style(100_000)[0] >= 9.0  # still visible


# ------------------------------------------------------------------------------------------ errors


def test_a_map_without_coordinates_says_to_run_map(tmp_path, capsys):
    path = write_map(tmp_path / "raw.h5", mapped=False)
    assert main(["plot", str(path), "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "no t-SNE coordinates" in err and f"pylogmap map {path}" in err
    assert not (tmp_path / "x.png").exists()


def test_unknown_colour_column_lists_the_columns(small_map, tmp_path, capsys):
    assert main(["plot", str(small_map), "-o", str(tmp_path / "x.png"), "--color", "licence"]) == 2
    err = capsys.readouterr().err
    assert "'licence' is not a column" in err
    for column in ("family", "architecture", "mean_loglik", "kind", "quality"):
        assert column in err


def test_unknown_label_and_wrong_file_type_are_refused(small_map, tmp_path, capsys):
    assert main(["plot", str(small_map), "-o", str(tmp_path / "x.png"), "--label", "no-such-model"]) == 2
    assert "no-such-model" in capsys.readouterr().err
    assert main(["plot", str(small_map), "-o", str(tmp_path / "x.jpg")]) == 2
    assert ".png, .pdf, .svg" in capsys.readouterr().err


def test_plot_help_imports_no_matplotlib():
    code = ("import sys\nfrom pylogmap.cli import main\ntry:\n    main(['plot', '--help'])\nexcept SystemExit:\n"
            "    pass\nprint('HEAVY', *(m for m in ('matplotlib', 'torch', 'PySide6') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1]).stdout
    assert out.splitlines()[-1].split()[1:] == []


# -------------------------------------------------------------------- the map's shared colours


def test_legend_order_and_colours_are_shared_rules():
    values = np.array(["zeta", "mistral", "others", "alpha", "zeta", "llama-2", "alpha", "zeta"])
    assert family_order(values) == ["llama-2", "mistral", "zeta", "alpha", "others"]
    assert order_by_count(values) == ["zeta", "alpha", "llama-2", "mistral", "others"]
    colors = category_colors(family_order(values))
    assert colors["llama-2"] == FAMILY_COLORS["llama-2"] and colors["others"] == FAMILY_COLORS["others"]
    assert colors["zeta"] != colors["alpha"]
    many = mapfigure.FigureData("x", [str(i) for i in range(40)], np.zeros((40, 2)), "kind",
                                np.array([f"c{i}" for i in range(40)]), None, np.full(40, np.nan), [])
    merged, order = mapfigure.legend_categories(many)
    assert len(order) == MAX_LEGEND_CATEGORIES and order[-1] == OTHER_CATEGORY
    assert (merged == OTHER_CATEGORY).sum() == 40 - (MAX_LEGEND_CATEGORIES - 1)
