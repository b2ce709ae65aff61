"""The map pipeline and its commands on real map files: map, neighbors, kl, annotate, export, import.

Every number printed by a command is checked against an independent float64 computation
(np.quantile, np.maximum, np.var over rows) on the matrix read back with plain h5py.
"""

from __future__ import annotations

import json
import pickle
import shutil

import h5py
import numpy as np
import pytest

from pylogmap.mapping import families as annotations  # (the package's __future__ import shadows "from pylogmap import")
from pylogmap import mapping
from pylogmap.mapping import geometry
from pylogmap.cli import main
from pylogmap.store import MapFile, open_map
from pylogmap.testing import synthetic_texts, write_synthetic_map

FAST = ["--tsne-iter", "250", "-q"]


@pytest.fixture()
def small_map(tmp_path):
    path = tmp_path / "m.h5"
    mf, pop = write_synthetic_map(path, 40, 120, n_families=4, seed=3)
    mf.close()
    return path, pop


def _json(capsys):
    return json.loads(capsys.readouterr().out)


def _reference(path):
    """tau, clipped L (rows used) and row indices from plain h5py, float64."""
    with h5py.File(path, "r") as f:
        L = f["loglik"][...].astype(np.float64)
        status = f["models/status"].asstr()[...]
        n_bytes = f["texts/n_bytes"][...]
    used = np.isfinite(L).all(axis=1) & (status == "ok")
    rows = np.flatnonzero(used)
    return L, rows, n_bytes


def _brute_neighbors(Lc, k):
    K = Lc.shape[0]
    kl = np.array([[np.var(Lc[i] - Lc[j]) / 2 for j in range(K)] for i in range(K)])
    np.fill_diagonal(kl, np.inf)
    idx = np.argsort(kl, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(kl, idx, axis=1)


def test_map_command_writes_correct_map(small_map, capsys):
    path, pop = small_map
    assert main(["map", str(path), "-k", "5", "--json", *FAST]) == 0
    out = _json(capsys)
    assert out["computed"] and out["n_used"] == 40 and out["k"] == 5
    L, rows, n_bytes = _reference(path)
    tau = np.quantile(L[rows], 0.02)
    assert out["tau"] == pytest.approx(tau, rel=1e-6)  # float32 storage of L
    with open_map(path) as mf:
        assert mf.map_attrs()["tau"] == out["tau"]
        tsne, params = mf.read_derived("tsne")
        assert tsne.shape == (40, 2) and np.isfinite(tsne).all()
        assert params["perplexity"] == pytest.approx(13.0) and params["metric"] == "sqeuclidean"
        pca, _ = mf.read_derived("pca")
        assert pca.shape == (40, 2)
        idx, _ = mf.read_derived("neighbors/index")
        kl, _ = mf.read_derived("neighbors/kl_nats")
        se, _ = mf.read_derived("neighbors/se_nats")
        ml, _ = mf.read_derived("mean_loglik")
        assert "family" in mf.annotations()
    Lc = np.maximum(L, np.float32(out["tau"]))
    ref_idx, ref_kl = _brute_neighbors(Lc, 5)
    assert np.array_equal(idx, ref_idx)
    assert np.allclose(kl, ref_kl, rtol=1e-5)
    d = Lc[0] - Lc[idx[0, 0]]
    m2, m4 = np.mean((d - d.mean()) ** 2), np.mean((d - d.mean()) ** 4)
    assert se[0, 0] == pytest.approx(np.sqrt((m4 - m2**2) / d.size) / 2, rel=1e-4)
    assert np.allclose(ml, L.mean(axis=1), rtol=1e-9)


def test_map_is_recomputed_only_when_rows_change_and_tau_is_reused(small_map, capsys):
    path, pop = small_map
    main(["map", str(path), "-k", "3", "--json", *FAST])
    first = _json(capsys)
    main(["map", str(path), "-k", "3", "--json", *FAST])
    second = _json(capsys)
    assert not second["computed"] and second["rows_hash"] == first["rows_hash"]
    # add a much worse model: the 2% quantile of all rows would change, the stored tau must not
    with open_map(path, mode="a") as mf:
        mf.append_rows(["new/model"], pop.L[:1] * 3.0)
    main(["map", str(path), "-k", "3", "--json", *FAST])
    third = _json(capsys)
    assert third["computed"] and third["n_used"] == 41
    assert third["tau"] == first["tau"] and third["tau_source"] == "map"
    assert third["rows_hash"] != first["rows_hash"]
    main(["map", str(path), "-k", "3", "--json", "--new-tau", *FAST])
    fourth = _json(capsys)
    L, rows, _ = _reference(path)
    assert fourth["tau"] == pytest.approx(np.quantile(L[rows], 0.02), rel=1e-6)
    assert fourth["tau"] != first["tau"]


def test_stored_results_are_redone_when_rows_change(small_map, capsys):
    """Neighbour lists and embeddings stored earlier but not asked now must not go stale."""
    path, pop = small_map
    main(["map", str(path), "-k", "3", "--no-tsne", *FAST])
    capsys.readouterr()
    with open_map(path, mode="a") as mf:
        mf.append_rows(["new/model"], pop.L[:1] - 5.0)
    main(["map", str(path), "-k", "0", "--no-tsne", "--no-pca", "--json", *FAST])
    out = _json(capsys)
    assert out["computed"] and out["k"] == 3 and out["embeddings"] == ["pca"]
    with open_map(path) as mf:
        idx, _ = mf.read_derived("neighbors/index")
        pca, _ = mf.read_derived("pca")
    assert idx.shape == (41, 3) and pca.shape == (41, 2) and np.isfinite(pca).all()


def test_nan_and_failed_rows_are_left_out_and_reported(small_map, capsys):
    path, pop = small_map
    partial = pop.L[:1].copy()
    partial[0, 7] = np.nan
    with open_map(path, mode="a") as mf:
        mf.append_rows(["half/scored"], partial)
        mf.append_rows(["broken/model"], np.full((1, 120), np.nan, np.float32), status=["failed"], errors=["CUDA OOM"])
    assert main(["map", str(path), "-k", "3", *FAST]) == 0
    text = capsys.readouterr().out
    assert "left out 2 row(s)" in text and "half/scored: 1 NaN entries" in text and "broken/model: status failed" in text
    with open_map(path) as mf:
        used, _ = mf.read_derived("used")
        tsne, _ = mf.read_derived("tsne")
        idx, _ = mf.read_derived("neighbors/index")
    assert used.tolist() == [True] * 40 + [False, False]
    assert np.isnan(tsne[40:]).all() and (idx[40:] == -1).all() and (idx[:40] < 40).all()
    assert main(["kl", str(path), "half/scored", pop.names[0]]) == 2
    err = capsys.readouterr().err
    assert "1 of 120 texts without a score" in err and "pylogmap score" in err
    assert main(["neighbors", str(path), "broken/model"]) == 2
    assert "CUDA OOM" in capsys.readouterr().err


def test_kl_command_matches_brute_force(small_map, capsys):
    path, pop = small_map
    a, b = pop.names[2], pop.names[9]
    assert main(["kl", str(path), a, b, "--json"]) == 0
    res = _json(capsys)
    L, rows, n_bytes = _reference(path)
    tau = np.quantile(L[rows], 0.02)
    assert res["tau_source"] == "computed" and res["tau"] == pytest.approx(tau, rel=1e-6)
    d = np.maximum(L[2], res["tau"]) - np.maximum(L[9], res["tau"])
    assert res["kl_nats"] == pytest.approx(np.var(d) / 2, rel=1e-9)
    B = n_bytes.mean()
    assert res["kl_bits_per_byte"] == pytest.approx(np.var(d) / 2 / (B * np.log(2)), rel=1e-9)
    assert res["se_bits_per_byte"] == pytest.approx(res["se_nats"] / (B * np.log(2)), rel=1e-12)
    assert main(["kl", str(path), a, a, "--json"]) == 0
    assert _json(capsys)["kl_nats"] == 0.0
    assert main(["kl", str(path), a, b]) == 0
    text = capsys.readouterr().out
    assert "bits/byte" in text and "nats/text" in text and "±" in text


def test_neighbors_command_matches_brute_force(small_map, capsys):
    path, pop = small_map
    main(["map", str(path), "-k", "0", *FAST])  # stores tau
    capsys.readouterr()
    assert main(["neighbors", str(path), pop.names[5], "-k", "4", "--json"]) == 0
    res = _json(capsys)
    L, _, _ = _reference(path)
    Lc = np.maximum(L, res["tau"])
    ref_idx, ref_kl = _brute_neighbors(Lc, 4)
    assert [n["row"] for n in res["neighbors"]] == ref_idx[5].tolist()
    assert [n["kl_nats"] for n in res["neighbors"]] == pytest.approx(ref_kl[5].tolist(), rel=1e-5)
    assert res["tau_source"] == "map"
    assert main(["neighbors", str(path), pop.names[5], "-k", "3"]) == 0
    text = capsys.readouterr().out
    assert text.count("\n") >= 5 and "KL bits/byte" in text


def test_unknown_model_suggests_close_names(small_map, capsys):
    path, pop = small_map
    wrong = pop.names[3].replace("synthetic/", "synthetc/")
    assert main(["neighbors", str(path), wrong]) == 2
    err = capsys.readouterr().err
    assert "Did you mean" in err and pop.names[3] in err
    assert main(["kl", str(path), pop.names[0], "nothing-like-it"]) == 2
    assert "no model 'nothing-like-it'" in capsys.readouterr().err
    assert main(["neighbors", str(path), pop.names[0], "-k", "40"]) == 2
    assert "-k 39" in capsys.readouterr().err


def test_empty_file_and_too_few_models(tmp_path, capsys):
    texts = synthetic_texts(np.full(20, 300))
    MapFile.create(tmp_path / "empty.h5", texts).close()
    assert main(["map", str(tmp_path / "empty.h5")]) == 2
    assert "no scored models" in capsys.readouterr().err
    mf = MapFile.create(tmp_path / "two.h5", texts)
    mf.append_rows(["a", "b"], -np.random.default_rng(0).uniform(100, 900, size=(2, 20)))
    mf.close()
    assert main(["map", str(tmp_path / "two.h5")]) == 2
    err = capsys.readouterr().err
    assert "needs at least 3" in err and "2 model(s)" in err
    assert main(["map", str(tmp_path / "missing.h5")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_three_models_is_enough(tmp_path, capsys):
    texts = synthetic_texts(np.full(30, 300))
    mf = MapFile.create(tmp_path / "three.h5", texts)
    mf.append_rows(["a", "b", "c"], -np.random.default_rng(1).uniform(100, 900, size=(3, 30)))
    mf.close()
    assert main(["map", str(tmp_path / "three.h5"), "--json", *FAST]) == 0
    out = _json(capsys)
    assert out["n_used"] == 3 and out["k"] == 2


# --------------------------------------------------------------------------------------------
# annotations
# --------------------------------------------------------------------------------------------

REALISTIC = {
    "meta-llama/Llama-2-7b-hf": "llama-2",
    "meta-llama/Llama-2-13b-chat-hf": "llama-2",
    "TheBloke/Llama-2-7B-GPTQ": "llama-2",
    "codellama/CodeLlama-7b-hf": "llama-2",
    "meta-llama/Meta-Llama-3-8B": "llama-3",
    "meta-llama/Llama-3.1-8B-Instruct": "llama-3",
    "meta-llama/Llama-3.2-1B": "llama-3",
    "huggyllama/llama-7b": "llama-1",
    "huggyllama/llama-30b": "llama-1",
    "EleutherAI/pythia-410m": "gpt_neox",
    "EleutherAI/pythia-1.4b-deduped": "gpt_neox",
    "EleutherAI/gpt-neox-20b": "gpt_neox",
    "databricks/dolly-v2-3b": "gpt_neox",
    "EleutherAI/gpt-j-6b": "gptj",
    "tiiuae/falcon-7b": "falcon",
    "tiiuae/falcon-40b-instruct": "falcon",
    "mistralai/Mistral-7B-v0.1": "mistral",
    "mistralai/Mixtral-8x7B-v0.1": "mistral",
    "HuggingFaceH4/zephyr-7b-beta": "mistral",
    "google/gemma-2b": "gemma",
    "google/gemma-2-9b-it": "gemma",
    "facebook/opt-1.3b": "opt",
    "facebook/opt-iml-1.3b": "opt",
    "bigscience/bloom-560m": "bloom",
    "bigscience/bloomz-7b1": "bloom",
    "deepseek-ai/deepseek-llm-7b-base": "deepseek",
    "deepseek-ai/deepseek-coder-1.3b-base": "deepseek",
    "gpt2": "others",
    "Qwen/Qwen2-7B": "others",
    "openlm-research/open_llama_3b": "others",
}


@pytest.mark.parametrize("name,family", sorted(REALISTIC.items()))
def test_default_family_on_realistic_names(name, family):
    assert annotations.default_family(name) == family


def test_default_family_falls_back_to_architecture():
    assert annotations.default_family("my-org/finetune-v2", "GPTNeoXForCausalLM") == "gpt_neox"
    assert annotations.default_family("my-org/finetune-v2", "MistralForCausalLM") == "mistral"
    assert annotations.default_family("my-org/finetune-v2", "Gemma2ForCausalLM") == "gemma"
    assert annotations.default_family("my-org/finetune-v2", "LlamaForCausalLM") == "others"
    assert annotations.default_family("/models/local_dir", "") == "others"
    assert set(REALISTIC.values()) <= set(annotations.FAMILIES)


def test_annotate_command(small_map, tmp_path, capsys):
    path, pop = small_map
    table = tmp_path / "t.csv"
    table.write_text(
        "model,size_b,license,mixed,date\n"
        f"{pop.names[0]},7,apache-2.0,7B,2024-01-02\n"
        f"{pop.names[1]},13.5,,13,2023-05-06\n"
        f"{pop.names[2]},,mit,x,\n"
        f"{pop.names[3].replace('synthetic/', 'synthetik/')},1,mit,1,2020-01-01\n",
        encoding="utf-8",
    )
    assert main(["annotate", str(path), str(table), "--json"]) == 0
    rep = _json(capsys)
    assert rep["matched_rows"] == 3
    assert rep["columns"] == {"size_b": "numeric", "license": "categorical", "mixed": "categorical", "date": "categorical"}
    assert rep["unknown"][0]["name"].startswith("synthetik/") and pop.names[3] in rep["unknown"][0]["suggestions"]
    with open_map(path) as mf:
        ann = mf.annotations()
    assert ann["size_b"][:3].tolist()[:2] == [7.0, 13.5] and np.isnan(ann["size_b"][2]) and np.isnan(ann["size_b"][10])
    assert ann["license"][:3].tolist() == ["apache-2.0", "", "mit"]
    assert ann["mixed"][:2].tolist() == ["7B", "13"]
    assert "family" in ann and "quality" in ann  # other columns kept
    # readable report, and a key column that does not exist
    assert main(["annotate", str(path), str(table)]) == 0
    assert "not in the map: synthetik/" in capsys.readouterr().out
    assert main(["annotate", str(path), str(table), "--key", "name"]) == 2
    assert "no column 'name'" in capsys.readouterr().err


def test_annotate_family_column(small_map, capsys):
    path, pop = small_map
    assert main(["annotate", str(path), "--json"]) == 0
    rep = _json(capsys)
    with open_map(path) as mf:
        fam = mf.annotations()["family"]
        table = mf.models_table()
    assert sum(rep["family"].values()) == 40
    assert fam.tolist() == annotations.default_families(table["name"], table["architecture"])
    assert set(fam.tolist()) <= set(annotations.FAMILIES) and "llama-2" in fam.tolist()


# --------------------------------------------------------------------------------------------
# export / import
# --------------------------------------------------------------------------------------------


def test_export_csv_parquet_and_matrix_round_trip(small_map, tmp_path, capsys):
    import pandas as pd

    path, pop = small_map
    assert main(["export", str(path), "-o", str(tmp_path / "x.csv")]) == 2
    assert "pylogmap map" in capsys.readouterr().err
    main(["map", str(path), "-k", "2", *FAST])
    assert main(["export", str(path), "-o", str(tmp_path / "map.csv")]) == 0
    df = pd.read_csv(tmp_path / "map.csv")
    with open_map(path) as mf:
        tsne, _ = mf.read_derived("tsne")
        L = mf.loglik()
    assert df["label"].tolist() == pop.names
    assert np.allclose(df[["tsne_x", "tsne_y"]].to_numpy(), tsne, rtol=1e-6)
    assert np.allclose(df["mean_loglik"], L.astype(np.float64).mean(axis=1))
    assert "family" in df.columns and "quality" in df.columns
    assert main(["export", str(path), "-o", str(tmp_path / "map.parquet")]) == 0
    dfp = pd.read_parquet(tmp_path / "map.parquet")
    assert dfp["label"].tolist() == pop.names and np.allclose(dfp["tsne_x"], df["tsne_x"])
    # matrix -> npy -> import -> identical map
    assert main(["export", str(path), "-o", str(tmp_path / "L.npy")]) == 0
    assert np.array_equal(np.load(tmp_path / "L.npy"), L)
    assert main(["import", str(tmp_path / "L.npy"), "--models", str(tmp_path / "L.models.txt"),
                 "--texts", str(tmp_path / "L.texts.jsonl"), "-o", str(tmp_path / "back.h5")]) == 0
    with open_map(tmp_path / "back.h5") as back, open_map(path) as orig:
        assert back.labels() == orig.labels()
        assert np.array_equal(back.loglik(), orig.loglik())
        assert back.text_hash == orig.text_hash
    # h5ad
    import anndata

    assert main(["export", str(path), "-o", str(tmp_path / "L.h5ad"), "--matrix", "q"]) == 0
    ad = anndata.read_h5ad(tmp_path / "L.h5ad")
    assert ad.shape == (40, 120) and list(ad.obs_names) == pop.names
    assert np.allclose(ad.X.mean(axis=0), 0, atol=1e-3) and np.allclose(ad.X.mean(axis=1), 0, atol=1e-3)
    assert np.allclose(ad.obsm["X_tsne"], tsne)
    assert main(["export", str(path), "-o", str(tmp_path / "x.xlsx")]) == 2
    assert "unknown output type" in capsys.readouterr().err


def test_import_published_pickle_format(tmp_path, capsys):
    rng = np.random.default_rng(7)
    N = 50
    texts = synthetic_texts(rng.integers(257, 1025, size=N))
    texts.to_jsonl(tmp_path / "texts.jsonl")
    data = {f"org/model-{i}": -rng.uniform(100, 1500, size=N) for i in range(6)}  # float64 vectors
    data["meta-llama/Llama-2-7b-hf"] = -rng.uniform(100, 1500, size=N)
    with open(tmp_path / "ll.pkl", "wb") as f:
        pickle.dump(data, f)
    assert main(["import", str(tmp_path / "ll.pkl"), "--texts", str(tmp_path / "texts.jsonl"),
                 "-o", str(tmp_path / "pub.h5"), "--json"]) == 0
    assert _json(capsys)["models"] == 7
    with open_map(tmp_path / "pub.h5") as mf:
        assert mf.model_names() == list(data)
        assert np.allclose(mf.loglik(), np.stack(list(data.values())), rtol=1e-7)
    assert main(["map", str(tmp_path / "pub.h5"), "-k", "2", *FAST]) == 0
    # refusing to overwrite, and bad shapes
    assert main(["import", str(tmp_path / "ll.pkl"), "--texts", str(tmp_path / "texts.jsonl"),
                 "-o", str(tmp_path / "pub.h5")]) == 2
    capsys.readouterr()
    data["short"] = np.zeros(10) - 1
    with open(tmp_path / "bad.pkl", "wb") as f:
        pickle.dump(data, f)
    assert main(["import", str(tmp_path / "bad.pkl"), "--texts", str(tmp_path / "texts.jsonl"),
                 "-o", str(tmp_path / "bad.h5")]) == 2
    assert "'short' has 10 values" in capsys.readouterr().err


def test_import_matrix_errors(tmp_path, capsys):
    N = 20
    texts = synthetic_texts(np.full(N, 300))
    texts.to_jsonl(tmp_path / "t.jsonl")
    np.save(tmp_path / "m.npy", -np.ones((3, N), np.float32))
    (tmp_path / "names.txt").write_text("a\nb\n", encoding="utf-8")
    assert main(["import", str(tmp_path / "m.npy"), "--models", str(tmp_path / "names.txt"),
                 "--texts", str(tmp_path / "t.jsonl"), "-o", str(tmp_path / "o.h5")]) == 2
    assert "3 rows but 2 model names" in capsys.readouterr().err
    (tmp_path / "names.txt").write_text("a\nb\nc\n", encoding="utf-8")
    np.save(tmp_path / "pos.npy", np.ones((3, N), np.float32))
    assert main(["import", str(tmp_path / "pos.npy"), "--models", str(tmp_path / "names.txt"),
                 "--texts", str(tmp_path / "t.jsonl"), "-o", str(tmp_path / "o.h5")]) == 2
    assert "positive entries" in capsys.readouterr().err
    np.save(tmp_path / "wide.npy", -np.ones((3, N + 1), np.float32))
    assert main(["import", str(tmp_path / "wide.npy"), "--models", str(tmp_path / "names.txt"),
                 "--texts", str(tmp_path / "t.jsonl"), "-o", str(tmp_path / "o.h5")]) == 2
    assert "21 columns but the text set has 20" in capsys.readouterr().err
    (tmp_path / "dup.txt").write_text("a\na\nc\n", encoding="utf-8")
    assert main(["import", str(tmp_path / "m.npy"), "--models", str(tmp_path / "dup.txt"),
                 "--texts", str(tmp_path / "t.jsonl"), "-o", str(tmp_path / "o.h5")]) == 2
    assert "more than once" in capsys.readouterr().err


def test_load_geometry_and_mapping_helpers(small_map):
    path, pop = small_map
    with open_map(path) as mf:
        geo, source = mapping.load_geometry(mf)
        assert source == "computed" and geo.Q.shape == (40, 120)
        kl, _ = geo.kl(0, 1)
        res = mapping.kl_between(mf, pop.names[0], pop.names[1])
        assert res["kl_nats"] == pytest.approx(kl, rel=1e-5)
        assert not mapping.is_fresh(mf)
    mapping.compute_map(path, embeddings=["pca"], k=2, progress=False)
    with open_map(path) as mf:
        assert mapping.is_fresh(mf, embeddings=["pca"], k=2)
        assert not mapping.is_fresh(mf, embeddings=["tsne"])
    assert geometry.CLIP_QUANTILE == 0.02


def test_out_of_core_map_equals_the_in_memory_one(small_map, tmp_path, capsys, monkeypatch):
    """--memory below Q's size: Q in a temporary file, four passes over the scores; every result
    under /map is the same as in memory (the FFT t-SNE asked for both, as large maps get it, with
    its default iterations: tsne_fft.default_iterations, here made short)."""
    from pylogmap.mapping import tsne_fft

    monkeypatch.setattr(tsne_fft, "SMALL_ITER", 260)
    path, _ = small_map
    other = tmp_path / "copy.h5"
    shutil.copy(path, other)
    assert main(["map", str(path), "-k", "5", "--json", "--tsne", "fft"]) == 0  # the default iterations
    mem = _json(capsys)
    assert main(["map", str(other), "-k", "5", "--json", "--tsne", "fft", "--memory", "1e-9"]) == 0
    disk = _json(capsys)
    assert not mem["out_of_core"] and disk["out_of_core"]
    # the FFT t-SNE reads its wide lists off the bracket: float32 tiles even where bf16 ones exist
    assert mem["backend"] == disk["backend"] == "numpy"
    assert mem["tau"] == disk["tau"] and mem["rows_hash"] == disk["rows_hash"] and disk["tsne_method"] == "fft"
    with open_map(path) as a, open_map(other) as b:
        assert a.derived_names() == b.derived_names()
        for name in a.derived_names():
            x, xa = a.read_derived(name)
            y, ya = b.read_derived(name)
            assert np.array_equal(x, y, equal_nan=True), name
        tsne_attrs = a.read_derived("tsne")[1]
        assert tsne_attrs["method"] == "fft" and tsne_attrs["neighbors"] == 39  # all 39 others of 40 models
        assert tsne_attrs["max_iter"] == 260  # no --tsne-iter: the default for the map's size
    assert not list(tmp_path.glob("pylogmap-q-*"))


def test_map_says_which_tsne_ran(small_map, capsys):
    path, _ = small_map
    assert main(["map", str(path), "-k", "3", "--no-pca", "--tsne-iter", "250"]) == 0
    captured = capsys.readouterr()
    assert "t-SNE: scikit-learn" in captured.out and "scikit-learn (published settings)" in captured.err
    with open_map(path) as mf:
        assert mf.read_derived("tsne")[1]["method"] == "sklearn" and mf.map_attrs()["tsne_method"] == "sklearn"
    assert main(["map", str(path), "--memory", "0"]) == 2
    assert "--memory" in capsys.readouterr().err
    assert main(["map", str(path), "--force", "--tsne-iter", "0"]) == 2  # not silently the default
    assert "at least 250 iterations" in capsys.readouterr().err


def test_bf16_tiles_give_the_same_map(small_map, tmp_path, capsys, monkeypatch):
    """A map without t-SNE on bf16 tiles (forced, as on an AMX CPU with MKL): the same neighbour
    lists, KL and SE, to the bit, as on float32 tiles; the output says which ran."""
    from pylogmap.mapping import gram_bf16

    if not gram_bf16.available():
        pytest.skip(f"bf16 tiles unavailable: {gram_bf16.unavailable_reason()}")
    path, _ = small_map
    other = tmp_path / "copy.h5"
    shutil.copy(path, other)
    results = {}
    for gemm, where in (("float32", path), ("bf16", other)):
        monkeypatch.setenv("PYLOGMAP_GEMM", gemm)
        assert main(["map", str(where), "-k", "5", "--no-tsne", *FAST]) == 0
        assert ("numpy-bf16" in capsys.readouterr().out) == (gemm == "bf16")
        with open_map(where) as mf:
            results[gemm] = [mf.read_derived(f"neighbors/{name}")[0] for name in ("index", "kl_nats", "se_nats")]
    for a, b in zip(results["float32"], results["bf16"]):
        assert np.array_equal(a, b, equal_nan=True)


def test_a_bad_gemm_setting_is_a_one_line_error(small_map, capsys, monkeypatch):
    path, _ = small_map
    monkeypatch.setenv("PYLOGMAP_GEMM", "fp8")
    assert main(["map", str(path), "-k", "3", "--no-tsne", *FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "PYLOGMAP_GEMM='fp8' is not one of auto, bf16, float32" in err
