"""Two scorers creating the same new map at once, with different text sets: the check (the file
exists, its text-set hash) and the writer lock are one step, so exactly one of them writes the
file and the other is refused; a file never holds one writer's scores under the other's texts.
(Run against the store before the fix, every trial of this test mixed the two.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from pylogmap.store import open_map
from pylogmap.texts import TextSet

ROOT = Path(__file__).resolve().parent.parent
TRIALS = 4

RACER = r"""
import sys, time
sys.path.insert(0, ROOT)
from pathlib import Path
import numpy as np
from pylogmap.errors import MapFileError
from pylogmap.store import ScoreWriter, lock
from pylogmap.texts import TextSet

me, other, folder, trials = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
texts = TextSet.from_texts([f"{me} text {k}" for k in range(5)])
take = lock.WriterLock.acquire
STATE = {}


def signal(name):
    (folder / f"{name}-{STATE['t']}").touch()


def wait_for(name, timeout):
    deadline = time.monotonic() + timeout
    while not (folder / f"{name}-{STATE['t']}").exists() and time.monotonic() < deadline:
        time.sleep(0.001)


def scripted(self):
    # One writer comes first, the other later, and each waits for the other at the moments where a
    # check and a lock taken in two steps would let them interleave: both find no file; the later
    # one takes the lock once the first one has created the file and checked it, and creates its
    # own over it; the first one then writes into that file. With the lock taken before the
    # check, the first writer never takes it a second time, the waits time out, and the later
    # one finds the first one's file and is refused.
    n = STATE["n"]
    STATE["n"] += 1
    if STATE["role"] == "first" and n == 0:
        wait_for("later-checked", 5.0)
    if STATE["role"] == "later" and n == 0:
        signal("later-checked")
        wait_for("first-checked", 1.0)
    if STATE["role"] == "first" and n == 1:
        signal("first-checked")
        wait_for("later-created", 5.0)
    if STATE["role"] == "later" and n == 1:
        signal("later-created")
        wait_for("first-locked", 5.0)
    take(self)
    if STATE["role"] == "first" and n == 1:
        signal("first-locked")


lock.WriterLock.acquire = scripted
for t in range(trials):
    STATE.update(t=t, n=0, role="first" if (t % 2 == 0) == (me == "A") else "later")
    (folder / f"ready-{t}-{me}").touch()
    while not (folder / f"ready-{t}-{other}").exists():  # a barrier: both start together
        time.sleep(0.0002)
    try:
        with ScoreWriter(folder / f"m{t}.h5", texts, commit_interval=0) as w:
            w.record(f"model-{me}", [-1.0 - (me == "B")] * 5, [1] * 5)
        print(t, "ok", flush=True)
    except MapFileError as err:
        print(t, "refused", str(err).replace(chr(10), " "), flush=True)
"""


def test_two_writers_creating_one_new_file_never_mix_their_text_sets(tmp_path):
    script = RACER.replace("ROOT", repr(str(ROOT)))
    procs = {me: subprocess.Popen([sys.executable, "-c", script, me, other, str(tmp_path), str(TRIALS)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for me, other in (("A", "B"), ("B", "A"))}
    outcomes = {}
    for me, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        outcomes[me] = dict(line.split(" ", 1) for line in out.splitlines())
    hashes = {me: TextSet.from_texts([f"{me} text {k}" for k in range(5)]).hash for me in "AB"}
    for t in range(TRIALS):
        won = [me for me in "AB" if outcomes[me][str(t)] == "ok"]
        assert len(won) == 1, (t, outcomes["A"][str(t)], outcomes["B"][str(t)])
        winner, loser = won[0], "B" if won[0] == "A" else "A"
        assert outcomes[loser][str(t)].startswith("refused")
        assert "another process" in outcomes[loser][str(t)] or "another text set" in outcomes[loser][str(t)]
        with open_map(tmp_path / f"m{t}.h5") as mf:
            assert mf.text_hash == hashes[winner] and mf.labels() == [f"model-{winner}"]
            np.testing.assert_array_equal(mf.loglik()[0], [-1.0 - (winner == "B")] * 5)
