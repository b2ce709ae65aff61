"""The Ray executor for real: a two-node Ray cluster on this machine over loopback (`_ray_cluster`),
tiny models scored through it, the map compared bit for bit with a local run, and faults: a worker
killed mid-task, a model that keeps crashing its worker, the driver killed mid-run, a node lost.

Most tests drive the cluster from this process (one Ray job, so the workers, torch imported, are
reused between tests); the killed-driver test runs its drivers as subprocesses through the CLI. Faults
are injected by the cluster's site hook (`_ray_site/sitecustomize.py`) into copies of tiny models.
A map's rows come in the order of the model list on every executor, whatever order the cluster
finished them in: rows are compared by key and their order checked too.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("torch")

import _ray_cluster as RC  # noqa: E402
import _score_helpers as H  # noqa: E402
from pylogmap import scoring  # noqa: E402
from pylogmap.cli import main  # noqa: E402
from pylogmap.scoring.ray_worker import NodeTokenCache  # noqa: E402
from pylogmap.store import open_map  # noqa: E402
from pylogmap.texts import TextSet  # noqa: E402

TEXTS = TextSet.from_texts(list(H.shakespeare_texts(10)))
MATRICES = ("loglik", "ntokens", "truncated")
TIMING = ("wall_time_s", "tokens_per_s")  # how long a row took differs between any two runs
WAIT_S = 240.0


# --------------------------------------------------------------------------- fixtures

def _reload_ray_auth_settings() -> None:
    """Ray reads RAY_AUTH_* once, at import; make this process see the current values (what Ray's
    own tests do). Ray versions without token authentication have nothing to reload."""
    try:
        from ray._private.authentication_test_utils import reset_auth_token_state
    except ImportError:
        return
    reset_auth_token_state()


@pytest.fixture(scope="module", autouse=True)
def ray_env():
    """Every use of Ray here (the cluster, its drivers, a local instance) authenticates with one
    token of this module's own, and no RAY_* setting of the machine leaks in."""
    with pytest.MonkeyPatch.context() as mp:
        for name in [n for n in os.environ if n.startswith("RAY_")]:
            mp.delenv(name)
        mp.setenv("RAY_AUTH_MODE", "token")
        mp.setenv("RAY_AUTH_TOKEN", secrets.token_hex(16))
        mp.setenv("RAY_USAGE_STATS_ENABLED", "0")
        _reload_ray_auth_settings()
        try:
            yield
        finally:
            mp.undo()
            _reload_ray_auth_settings()


@pytest.fixture(autouse=True)
def _run_outside_the_clone(tmp_path, monkeypatch):
    """Drivers start in a folder without a pylogmap source folder: Ray puts the driver's folder
    first on the workers' import path (ray_executor.check_no_source_folder_here)."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def cluster(ray_env):
    """A head (1 CPU) and a second node (1 CPU) on 127.0.0.1, stopped at the end whatever happens."""
    from ray._private import services

    with RC.LoopbackCluster(token=os.environ["RAY_AUTH_TOKEN"]) as c, pytest.MonkeyPatch.context() as mp:
        original = services.resolve_ip_for_localhost  # as the cluster's site hook does: stay on loopback
        mp.setattr(services, "resolve_ip_for_localhost", lambda host: host if host == "127.0.0.1" else original(host))
        c.start()
        try:
            yield c
        finally:
            if ray.is_initialized():
                ray.shutdown()


@pytest.fixture
def connected(cluster):
    """This process as a driver of the cluster."""
    if not ray.is_initialized():
        ray.init(address=cluster.address, log_to_driver=False)
    return cluster


@pytest.fixture
def texts_file(tmp_path):
    path = tmp_path / "texts.jsonl"
    TEXTS.to_jsonl(path)
    return path


# --------------------------------------------------------------------------- helpers

def read_rows(path) -> dict:
    """Row key -> its matrices' rows, `/models` columns and decoded JSON meta."""
    with open_map(path) as mf:
        keys, table = mf.keys(), mf.models_table()
        values = {name: getattr(mf, name)() for name in MATRICES}
    rows = {}
    for i, key in enumerate(keys):
        row = {c: table[c][i] for c in table if c not in ("meta", "label")}
        row.update({name: values[name][i] for name in MATRICES}, meta=json.loads(table["meta"][i]))
        rows[key] = row
    return rows


def assert_same_rows(path, reference, keys=None) -> None:
    """The rows of `path` equal those of `reference` bit for bit: the matrices, every `/models`
    column but the timings, and the metadata but where a Ray run records the node it ran on."""
    got, want = read_rows(path), read_rows(reference)
    keys = set(want) if keys is None else set(keys)
    assert keys <= set(got) and keys <= set(want)
    assert [k for k in got if k in keys] == [k for k in want if k in keys]  # the same order of rows
    for key in keys:
        for name in MATRICES:
            np.testing.assert_array_equal(got[key][name], want[key][name], err_msg=f"{key.label}: {name}")
        for column, value in want[key].items():
            if column not in (*MATRICES, *TIMING, "meta"):
                assert got[key][column] == value, (key.label, column)
        assert {k: v for k, v in got[key]["meta"].items() if k != "ray"} == want[key]["meta"], key.label
    with open_map(path) as a, open_map(reference) as b:
        assert a.text_hash == b.text_hash


def local_run(tmp_path, specs, name="local.h5"):
    out = tmp_path / name
    scoring.score_models(TEXTS, [str(s) for s in specs], out, progress=False)
    return out


def row_name(spec) -> str:
    """The row name of a local model folder: the folder's own name (scoring.names)."""
    return Path(spec).name


def by_name(path) -> dict:
    return {key.name: row for key, row in read_rows(path).items()}


def wait_for(condition, what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# --------------------------------------------------------------------------- without a cluster


def test_without_an_address_a_local_ray_instance_is_started(tmp_path):
    names = [H.model_dir("gpt2"), H.model_dir("neox")]
    out = tmp_path / "ray.h5"
    with RC.local_instance() as init_kwargs:
        executor = scoring.RayExecutor(gpus_per_model=0, **init_kwargs)
        scoring.score_models(TEXTS, names, out, progress=False, executor=executor)
        assert len(ray.nodes()) == 1  # a new instance of its own, not a cluster found on the machine
        listeners = RC.listeners_of(psutil.Process().children(recursive=True))
        assert listeners and {ip for ip, _ in listeners} <= {"127.0.0.1", "::ffff:127.0.0.1"}, listeners
    assert_same_rows(out, local_run(tmp_path, names))
    assert {row["meta"]["ray"]["token_ids"] for row in read_rows(out).values()} <= {"tokenized", "node"}


def test_bad_ray_options_are_clear_errors(tmp_path, texts_file, capsys):
    out = tmp_path / "map.h5"
    common = ["score", "--texts", str(texts_file), "--models", H.model_dir("gpt2"), "-o", str(out), "--quiet"]
    assert main([*common, "--ray-address", "127.0.0.1:1"]) == 2
    assert "only apply to the Ray executor" in capsys.readouterr().err
    assert main([*common, "--executor", "ray", "--ray-address", f"127.0.0.1:{RC.free_port()}"]) == 2
    assert "no Ray cluster answers at 127.0.0.1:" in capsys.readouterr().err
    assert main([*common, "--executor", "ray", "--ray-address", "nonsense"]) == 2
    assert "is not HOST:PORT" in capsys.readouterr().err
    assert main([*common, "--executor", "ray", "--ray-gpus-per-model", "-1"]) == 2
    assert "--ray-gpus-per-model must be a number >= 0" in capsys.readouterr().err
    assert main([*common, "--executor", "ray", "--ray-retries", "-1"]) == 2
    assert "--ray-retries must be a whole number >= 0" in capsys.readouterr().err
    assert not out.exists()  # nothing written for a run that cannot start


def test_node_token_cache_tokenizes_once_per_tokenizer_for_all_tasks_of_a_node(tmp_path):
    calls = []

    class SlowTokenizer:  # what tokenize_texts needs: __call__(texts, ...) -> {"input_ids": ...}
        model_max_length = 10**6

        def __call__(self, texts, **kwargs):
            calls.append(len(texts))
            time.sleep(0.2)  # long enough for the other tasks to ask while it works
            return {"input_ids": [[len(t), 1, 2] for t in texts]}

    folder = tmp_path / "node"
    texts = ["a", "bb", "ccc"]
    caches = [NodeTokenCache(folder) for _ in range(4)]  # four tasks on one node, at once
    results = {}
    threads = [threading.Thread(target=lambda c=c: results.update({id(c): c.get(SlowTokenizer(), "tok-a", texts, "t")}))
               for c in caches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [3]  # tokenized once; the other three waited for that result and loaded it
    assert sorted(c.source for c in caches) == ["node", "node", "node", "tokenized"]
    want = [[1, 1, 2], [2, 1, 2], [3, 1, 2]]
    assert all([list(ids) for ids in r] == want for r in results.values())
    assert all(ids.dtype == np.int64 for r in results.values() for ids in r)

    later = NodeTokenCache(folder)  # a later task, in another worker process
    assert [list(ids) for ids in later.get(SlowTokenizer(), "tok-a", texts, "t")] == want
    assert later.source == "node" and calls == [3]
    later.get(SlowTokenizer(), "tok-b", texts, "t")  # another tokenizer: its own ids
    assert later.source == "tokenized" and calls == [3, 3]

    for saved in folder.glob("*.npz"):  # a damaged file is recomputed, not trusted
        saved.write_bytes(b"not an npz file")
    again = NodeTokenCache(folder)
    assert [list(ids) for ids in again.get(SlowTokenizer(), "tok-a", texts, "t")] == want
    assert again.source == "tokenized"

    nowhere = NodeTokenCache(tmp_path / "a-file")  # a folder that cannot be made: tokenize here
    (tmp_path / "a-file").write_text("")
    assert [list(ids) for ids in nowhere.get(SlowTokenizer(), "tok-a", texts, "t")] == want
    assert nowhere.source == "tokenized"


# --------------------------------------------------------------------------- on the two-node cluster

@pytest.mark.slow  # a two-node cluster on loopback: 15-35 s each
def test_two_nodes_score_the_same_map_as_a_local_run_and_only_the_driver_writes(connected, tmp_path):
    cluster = connected
    listeners = cluster.listeners()
    assert listeners and {ip for ip, _ in listeners} <= {"127.0.0.1", "::ffff:127.0.0.1"}, listeners
    twin = tmp_path / "gpt2-twin"  # a third model with GPT-2's tokenizer: some node sees it twice
    shutil.copytree(H.model_dir("gpt2"), twin)
    specs = [H.model_dir(a) for a in ("gpt2", "neox", "llama", "phi")] + [str(twin)]
    out_dir = cluster.watch_dir / "two-nodes"
    out_dir.mkdir()
    out = out_dir / "map.h5"
    summary = scoring.score_models(TEXTS, specs, out, progress=False,
                                   executor=scoring.RayExecutor(gpus_per_model=0))
    assert [r.status for r in summary.rows] == ["ok"] * len(specs)

    assert_same_rows(out, local_run(tmp_path, specs))
    rows = read_rows(out)
    nodes = {row["meta"]["ray"]["node"] for row in rows.values()}
    assert len(nodes) == 2, "the work should have run on both nodes"
    assert all(row["meta"]["ray"]["host"] for row in rows.values())
    # the driver (this process) wrote the map; no process of the cluster wrote anything there
    assert not [p for paths in cluster.writers().values() for p in paths if p.startswith(str(out_dir))]
    # token ids: computed at most once per tokenizer on each node, then shared by its tasks
    tokenized: dict = {}
    for row in rows.values():
        source = row["meta"]["ray"]["token_ids"]
        assert source in ("node", "tokenized"), source
        pair = (row["meta"]["ray"]["node"], row["tokenizer"])
        tokenized[pair] = tokenized.get(pair, 0) + (source == "tokenized")
    assert max(tokenized.values()) <= 1, [row["meta"]["ray"] for row in rows.values()]


@pytest.mark.slow  # a two-node cluster on loopback: 15-35 s each
def test_a_killed_worker_is_retried_and_a_crashing_model_fails_after_its_retries(connected, tmp_path):
    cluster = connected
    hang = RC.fault_model(H.model_dir("neox"), tmp_path / "neox-hang", "hang")
    crash = RC.fault_model(H.model_dir("llama"), tmp_path / "llama-crash", "crash", times=1000)
    specs = [str(hang), H.model_dir("gpt2"), str(crash)]  # the first model finishes last
    killed = []

    def kill_the_hanging_worker():
        wait_for(lambda: RC.attempts(hang), "the hanging model to start")
        first = RC.attempts(hang)[0]
        assert cluster.node_of(first["ppid"]) is not None  # a worker of this cluster, nothing else
        os.kill(first["pid"], signal.SIGKILL)  # killed in the middle of its task
        killed.append(first["pid"])

    killer = threading.Thread(target=kill_the_hanging_worker)
    killer.start()
    try:
        out = tmp_path / "map.h5"
        summary = scoring.score_models(TEXTS, specs, out, progress=False,
                                       executor=scoring.RayExecutor(gpus_per_model=0, max_retries=1))
    finally:
        killer.join()
    assert killed
    statuses = {r.label: r.status for r in summary.rows}
    assert statuses == {row_name(hang): "ok", row_name(H.model_dir("gpt2")): "ok", row_name(crash): "failed"}
    assert len(RC.attempts(hang)) == 2  # the killed attempt, then the retry that finished
    assert len(RC.attempts(crash)) == 2  # bounded: one try plus max_retries=1, then given up
    (failure,) = summary.failed
    assert failure.error.startswith("lost on the Ray cluster after 2 attempts: ")
    assert "died" in failure.error.lower() or "crash" in failure.error.lower(), failure.error

    rows = by_name(out)
    assert list(rows) == [row_name(s) for s in specs]  # recorded in the order of the model list, not the order they finished
    assert rows[row_name(crash)]["status"] == "failed" and rows[row_name(crash)]["error"] == failure.error
    assert np.isnan(rows[row_name(crash)]["loglik"]).all()
    good = [key for key in read_rows(out) if key.name != row_name(crash)]
    assert_same_rows(out, local_run(tmp_path, specs[:2]), keys=good)


@pytest.mark.slow  # a two-node cluster on loopback: 15-35 s each
def test_a_killed_driver_keeps_its_finished_rows_and_a_rerun_resumes(cluster, tmp_path, texts_file):
    hang = RC.fault_model(H.model_dir("phi"), tmp_path / "phi-hang", "hang", wait_s=60)
    # the hanging model last: results are recorded in the order of the list, so the two before it
    # are in the file when the driver is killed (a result behind a slow model waits in memory)
    specs = [H.model_dir("gpt2"), H.model_dir("neox"), str(hang)]
    out_dir = cluster.watch_dir / "killed-driver"
    out_dir.mkdir()
    out = out_dir / "map.h5"
    args = ["score", "--texts", str(texts_file), "--models", *specs, "-o", str(out), "--quiet", "--executor", "ray"]

    first = subprocess.Popen(RC.driver_command([*args, "--ray-address", cluster.address]), env=cluster.env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: first.poll() is not None or (RC.attempts(hang) and H.finished_rows(out) >= 2),
                 "two models to finish while the third hangs")
    finally:
        first.send_signal(signal.SIGKILL)
        _, err = first.communicate()
    assert first.returncode == -signal.SIGKILL, err.decode(errors="replace")[-3000:]
    before = by_name(out)  # readable right after the kill (the journal is applied)
    assert list(before) == [row_name(s) for s in specs[:2]] and all(r["status"] == "ok" for r in before.values())

    # the rerun, told the cluster by RAY_ADDRESS this time, scores only what is missing
    second = subprocess.Popen(RC.driver_command(args), env=dict(cluster.env, RAY_ADDRESS=cluster.address),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = second.communicate(timeout=WAIT_S)
    assert second.returncode == 0, err.decode(errors="replace")[-3000:]
    after = by_name(out)
    assert list(after) == [row_name(s) for s in specs]
    for name, row in before.items():  # kept as they were, not scored again
        assert row["meta"]["ray"] == after[name]["meta"]["ray"]
    assert len(RC.attempts(hang)) == 2  # hung in the killed run, scored in the rerun
    assert_same_rows(out, local_run(tmp_path, specs))

    writers = {pid for pid, paths in cluster.writers().items() if any(p.startswith(str(out_dir)) for p in paths)}
    assert writers == {first.pid, second.pid}  # the two drivers wrote the map; no worker did


@pytest.mark.slow  # a two-node cluster on loopback: 15-35 s each
def test_a_lost_node_costs_only_its_in_flight_models(connected, tmp_path):
    cluster = connected
    node = cluster.add_node()
    hangs = [RC.fault_model(H.model_dir(a), tmp_path / f"{a}-hang", "hang") for a in ("gpt2", "neox", "llama")]
    specs = [*map(str, hangs), H.model_dir("phi")]
    lost = []

    def lose_a_node_while_each_node_runs_one_model():
        try:
            wait_for(lambda: all(RC.attempts(h) for h in hangs), "the three hanging models to start")
            on_node = [h for h in hangs if node.owns(RC.attempts(h)[0]["ppid"])]
            lost.extend(on_node)
            node.kill()
        finally:
            for h in hangs:
                RC.release_file(h).touch()

    chaos = threading.Thread(target=lose_a_node_while_each_node_runs_one_model)
    chaos.start()
    try:
        out = tmp_path / "map.h5"
        summary = scoring.score_models(TEXTS, specs, out, progress=False,
                                       executor=scoring.RayExecutor(gpus_per_model=0))
    finally:
        chaos.join()
        node.kill()
    assert len(lost) == 1, "each of the three nodes should have been running one hanging model"
    assert [r.status for r in summary.rows] == ["ok"] * len(specs)
    (victim,) = lost
    dead_node = RC.attempts(victim)[0]["node"]
    rows = by_name(out)
    assert len(RC.attempts(victim)) == 2 and rows[row_name(victim)]["meta"]["ray"]["node"] != dead_node
    assert all(len(RC.attempts(h)) == 1 for h in hangs if h != victim)  # only the lost node's model ran again
    assert dead_node not in {row["meta"]["ray"]["node"] for row in rows.values()}
    assert_same_rows(out, local_run(tmp_path, specs))
