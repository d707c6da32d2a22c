"""However a run ends, nothing it started outlives it (local target).

A nested pytest runs one long case; once its role agents are up, the
controller (or one xdist worker) gets a signal. Every process of that run is
found by a marker in its environment, never by name, and must be gone within
a few seconds of the run's end.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = [pytest.mark.selftest, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
# at scale 10 the relay sleeps 30 s before it splices: the signal finds the case running
LONG_CASE = "tests/tcp/test_tcp.py::test_tcp[splice-sleep-relay-relay]"
# the daemon and its peers (harness.relayd, harness.relayd.peer): the session timeout, scaled
RELAYD_CASE = "tests/relayd/test_relayd.py::test_relayd[splice-timeout]"
MARK = "SPLICE_RUN_MARK"


def marked(mark: str) -> dict[int, str]:
    """Live processes (not zombies) whose environment carries the run's marker: pid -> command line."""
    found = {}
    needle = f"{MARK}={mark}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if stat[stat.rindex(")") + 2] not in "ZX":
            found[int(entry.name)] = cmdline.strip()
    return found


def agents(mark: str, kind: str = "harness.agent") -> dict[int, str]:
    return {pid: cmd for pid, cmd in marked(mark).items() if kind in cmd}


def wait_for(what: str, check: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"no {what} within {seconds:g} s"
        time.sleep(0.05)  # the process table has no event to wait on: look again shortly


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[1])


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc to find the run's processes")
@pytest.mark.parametrize(("how", "workers", "case"), [
    ("SIGTERM", 0, LONG_CASE), ("SIGHUP", 2, LONG_CASE), ("SIGTERM", 2, LONG_CASE), ("SIGKILL", 0, LONG_CASE),
    ("SIGKILL", 2, LONG_CASE), ("SIGKILL-worker", 2, LONG_CASE), ("SIGKILL", 0, RELAYD_CASE),
], ids=["sigterm", "sighup-xdist", "sigterm-xdist", "sigkill", "sigkill-xdist", "sigkill-one-worker",
        "sigkill-relayd"])
def test_run_end_leaves_nothing(how: str, workers: int, case: str, tmp_path: Path) -> None:
    mark = uuid.uuid4().hex
    env = {**os.environ, MARK: mark}
    env.pop("PYTEST_XDIST_WORKER", None)
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-n", str(workers),
            f"--basetemp={tmp_path / 'run'}", "--splice-time-scale=10", "--splice-modes=splice", case]
    out = (tmp_path / "out").open("w+")
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        kind = "harness.relayd" if case == RELAYD_CASE else "harness.agent"
        wait_for(f"{kind} processes of the nested run",
                 lambda: len(agents(mark, kind)) >= 2 or proc.poll() is not None, 60)
        assert proc.poll() is None, "the nested run ended before its agents were up"
        if how == "SIGKILL-worker":
            worker = parent_of(next(iter(agents(mark, kind))))
            assert worker != proc.pid, "with -n 2 the agents' parent is a worker, not the controller"
            os.kill(worker, signal.SIGKILL)
        else:
            os.kill(proc.pid, getattr(signal, how))
        status = proc.wait(60)
        wait_for("end of every process of the run", lambda: not marked(mark), 15)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        left = marked(mark)
        for pid in left:  # ours by the marker: end them, then fail below
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        out.seek(0)
        output = out.read()
        out.close()
    assert not left, f"left behind: {left}\n{output[-2000:]}"
    if how in ("SIGTERM", "SIGHUP"):
        assert status == pytest.ExitCode.INTERRUPTED, f"exit status {status}\n{output[-2000:]}"
        assert f"run ended by {how}" in output, output[-2000:]
    elif how == "SIGKILL":
        assert status == -signal.SIGKILL
    else:
        assert status != 0, f"a run that lost a worker must not pass\n{output[-2000:]}"
