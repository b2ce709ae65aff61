"""A real multi-node Ray cluster on this machine, over loopback, owned by one test session.

Each node is its own `ray start --block` process (the head: `--head --port P`; the others:
`--address 127.0.0.1:P`), started in a session of its own with its own temp dir, every port picked
free on 127.0.0.1, no dashboard, and token authentication with a token of this cluster's own. The
folder `_ray_site` is on the PYTHONPATH of every process of the cluster and of its drivers (its
`sitecustomize` keeps Ray on loopback, logs who writes the watched folder, and injects faults).

The cluster ends only what it started: `stop()` (also on `with` exit) terminates each node's
`ray start` process and then kills, by pid, every process it ever saw in a node's tree; it never
runs `ray stop`, which would end every Ray instance on the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

SITE = Path(__file__).with_name("_ray_site")
START_TIMEOUT_S = 180.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RayNode:
    """One `ray start --block` process and everything it spawned (GCS, raylet, agents, workers)."""

    def __init__(self, name: str, popen: subprocess.Popen, log: Path) -> None:
        self.name = name
        self.popen = popen
        self.log = log
        self.seen: dict[int, psutil.Process] = {}

    def processes(self) -> list[psutil.Process]:
        """The node's live processes (its `ray start` process and all its descendants)."""
        try:
            root = psutil.Process(self.popen.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            procs = []
        for p in procs:
            self.seen.setdefault(p.pid, p)
        return procs

    def owns(self, pid: int) -> bool:
        return any(p.pid == pid for p in self.processes())

    def wait_started(self, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "Ray runtime started" in self.log.read_text(errors="replace"):
                self.processes()
                return
            if self.popen.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"Ray node {self.name} did not start:\n" + self.log.read_text(errors="replace")[-4000:])

    def kill(self) -> None:
        """The node vanishes at once, as a machine that loses power: SIGKILL to all its processes."""
        for p in [*self.processes(), *self.seen.values()]:
            try:
                p.kill()  # psutil checks the process's creation time, so a reused pid is left alone
            except psutil.NoSuchProcess:
                pass

    def stop(self, timeout: float = 15.0) -> None:
        """Graceful end (ray start --block stops its processes on SIGTERM), then kill what is left."""
        self.processes()
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and any(p.is_running() for p in self.seen.values()):
            time.sleep(0.1)
        self.kill()
        self.popen.wait()


class LoopbackCluster:
    """`with LoopbackCluster() as c: c.start(); ...`: a head (1 CPU) plus nodes added by `add_node`.

    `env` is the environment for driver subprocesses (token, site hooks); every process started with
    it logs its writes under `watch_dir` (`writers()`). `token`: the cluster's authentication token
    (default: a random one).
    """

    def __init__(self, *, token: str | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="plm-ray-"))  # short: Ray's socket paths must stay < 108 bytes
        self.port = free_port()
        self.nodes: list[RayNode] = []
        self.watch_dir = self.root / "watched"
        self.watch_log = self.root / "writes.log"
        self.watch_dir.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}  # the machine's Ray settings are not ours
        env.update(
            RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token or secrets.token_hex(16), RAY_USAGE_STATS_ENABLED="0",
            RAYTEST_LOOPBACK="1", RAYTEST_WATCH_DIR=str(self.watch_dir), RAYTEST_WATCH_LOG=str(self.watch_log),
            PYTHONPATH=os.pathsep.join([str(SITE), *filter(None, [os.environ.get("PYTHONPATH")])]),
            HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1",
        )
        self.env = env

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def head(self) -> RayNode:
        return self.nodes[0]

    def _ports(self) -> list[str]:
        return ["--node-manager-port", str(free_port()), "--object-manager-port", str(free_port()),
                "--metrics-export-port", str(free_port()), "--dashboard-agent-listen-port", str(free_port()),
                "--dashboard-agent-grpc-port", str(free_port()), "--runtime-env-agent-port", str(free_port()),
                "--min-worker-port", "0", "--max-worker-port", "0"]

    def _launch(self, name: str, args: list[str], num_cpus: int) -> RayNode:
        temp = self.root / name
        log = self.root / f"{name}.log"
        command = [sys.executable, "-c", "from ray.scripts.scripts import main; main()", "start", "--block",
                   "--num-cpus", str(num_cpus), "--num-gpus", "0", "--object-store-memory", str(100 * 2**20),
                   "--disable-usage-stats", "--temp-dir", str(temp), *self._ports(), *args]
        with open(log, "wb") as out:
            popen = subprocess.Popen(command, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        node = RayNode(name, popen, log)
        self.nodes.append(node)
        return node

    def start(self, *, head_cpus: int = 1, workers: int = 1, worker_cpus: int = 1) -> "LoopbackCluster":
        head = self._launch("head", ["--head", "--node-ip-address", "127.0.0.1", "--port", str(self.port),
                                     "--include-dashboard", "false"], head_cpus)
        head.wait_started()
        for _ in range(workers):
            self.add_node(num_cpus=worker_cpus, wait=False)
        for node in self.nodes[1:]:
            node.wait_started()
        return self

    def add_node(self, *, num_cpus: int = 1, wait: bool = True) -> RayNode:
        node = self._launch(f"node{len(self.nodes)}", ["--address", self.address], num_cpus)
        if wait:
            node.wait_started()
        return node

    def node_of(self, pid: int) -> RayNode | None:
        """The node whose process tree holds `pid` (e.g. a worker's parent, its raylet)."""
        return next((node for node in self.nodes if node.owns(pid)), None)

    def writers(self) -> dict[int, set[str]]:
        """pid -> paths it opened for writing under `watch_dir`, as logged so far."""
        out: dict[int, set[str]] = {}
        if self.watch_log.exists():
            for line in self.watch_log.read_text().splitlines():
                pid, _, path = line.partition(" ")
                out.setdefault(int(pid), set()).add(path)
        return out

    def listeners(self) -> list[tuple[str, int]]:
        """(address, port) of every TCP socket a cluster process listens on."""
        return listeners_of(p for node in self.nodes for p in node.processes())

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "LoopbackCluster":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


@contextlib.contextmanager
def local_instance(num_cpus: int = 1):
    """For a Ray instance that `ray.init` starts in this process (`RayExecutor` without an address):
    yields the `ray.init` keywords that keep it on 127.0.0.1, without a dashboard, in a temp dir of
    its own; at the end, whatever happens, shuts it down (Ray ends the processes it started for it)
    and removes the temp dir. A Ray this process was already connected to is left first."""
    import ray
    from ray._private import services

    if ray.is_initialized():
        ray.shutdown()
    temp = tempfile.mkdtemp(prefix="plm-ray-local-")  # short: Ray's socket paths must stay < 108 bytes
    original = services.resolve_ip_for_localhost  # Ray would turn 127.0.0.1 into the machine's address
    services.resolve_ip_for_localhost = lambda host: host if host == "127.0.0.1" else original(host)
    try:
        yield dict(num_cpus=num_cpus, include_dashboard=False, _temp_dir=temp, _node_ip_address="127.0.0.1")
    finally:
        try:
            ray.shutdown()
        finally:
            services.resolve_ip_for_localhost = original
            shutil.rmtree(temp, ignore_errors=True)


def listeners_of(processes) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket the given `psutil` processes listen on."""
    out = []
    for p in processes:
        try:
            conns = p.net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        out.extend((c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN)
    return out


def driver_command(args: list[str]) -> list[str]:
    """A `pylogmap` command line for a driver subprocess (run it with `cluster.env`); it imports the
    installed pylogmap, the same one the cluster's workers import."""
    return [sys.executable, "-c", "import sys; from pylogmap.cli import main; sys.exit(main(sys.argv[1:]))", *args]


def fault_model(source: str | Path, folder: Path, kind: str, *, times: int = 1, wait_s: float = 120.0) -> Path:
    """A copy of the model folder `source` that misbehaves in Ray workers (see `_ray_site`): kind
    "crash" (the worker kills itself) or "hang" (waits for `release_file(folder)`), for its first
    `times` attempts. Returns the folder; `attempts(folder)` reads who tried it."""
    shutil.copytree(source, folder)
    spec = {"kind": kind, "times": times, "wait_s": wait_s,
            "attempts": str(folder / "attempts.jsonl"), "release": str(release_file(folder))}
    (folder / "fault.json").write_text(json.dumps(spec))
    return folder


def release_file(folder: Path) -> Path:
    return Path(str(folder) + ".release")


def attempts(folder: Path) -> list[dict]:
    path = folder / "attempts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
