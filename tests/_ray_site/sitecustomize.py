"""Loaded at start-up by every Python process of the Ray test cluster and of its drivers (the
cluster helper puts this folder on their PYTHONPATH; pytest's own process never loads it).

- Loopback: Ray turns "127.0.0.1" into the machine's network address; kept as given, the nodes
  and drivers talk over loopback and every Ray listener binds to 127.0.0.1 only.
- Writers: every open-for-writing of a path under $RAYTEST_WATCH_DIR is logged to
  $RAYTEST_WATCH_LOG as "PID PATH", so a test can assert that only the driver wrote the map.
- Faults, in Ray workers only: when a worker first opens `DIR/config.json` and `DIR/fault.json`
  exists, it appends one line (its pid, parent pid and Ray node id) to the fault's `attempts` file
  and, for the first `times` attempts, kills itself ("crash") or waits for the `release` file to
  appear ("hang", at most `wait_s` seconds). Everything else about the model is a normal model.
"""

import json
import os
import signal
import sys
import threading
import time

_WATCH = os.environ.get("RAYTEST_WATCH_DIR")
_LOG = os.environ.get("RAYTEST_WATCH_LOG")
_IN_WORKER = os.path.basename(sys.argv[0] if sys.argv else "") == "default_worker.py"
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_local = threading.local()  # .busy: this thread is inside the hook (its own opens are not watched)
_faulted: set = set()


def _keep_loopback() -> None:
    from ray._private import services

    original = services.resolve_ip_for_localhost

    def resolve_ip_for_localhost(host):
        return host if host == "127.0.0.1" else original(host)

    services.resolve_ip_for_localhost = resolve_ip_for_localhost


def _append(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def _fault(folder: str) -> None:
    with open(os.path.join(folder, "fault.json"), encoding="utf-8") as f:
        spec = json.load(f)
    import ray

    node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""
    _append(spec["attempts"], json.dumps({"pid": os.getpid(), "ppid": os.getppid(), "node": node}))
    with open(spec["attempts"], encoding="utf-8") as f:
        attempt = sum(1 for _ in f)
    if attempt > spec.get("times", 1):
        return
    if spec["kind"] == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    deadline = time.monotonic() + spec.get("wait_s", 120)
    while not os.path.exists(spec["release"]) and time.monotonic() < deadline:
        time.sleep(0.05)


def _audit(event, args) -> None:
    if event != "open" or getattr(_local, "busy", False):
        return
    path, _, flags = args
    if isinstance(path, int):
        return
    _local.busy = True
    try:
        path = os.path.abspath(os.fsdecode(path))
        if _WATCH and _LOG and (flags or 0) & _WRITE_FLAGS and path.startswith(_WATCH + os.sep):
            _append(_LOG, f"{os.getpid()} {path}")
        folder, name = os.path.split(path)
        if (_IN_WORKER and name == "config.json" and folder not in _faulted
                and os.path.exists(os.path.join(folder, "fault.json"))):
            _faulted.add(folder)
            _fault(folder)
    finally:
        _local.busy = False


if os.environ.get("RAYTEST_LOOPBACK") == "1":
    _keep_loopback()
sys.addaudithook(_audit)
