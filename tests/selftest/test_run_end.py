"""However a run ends, nothing it started outlives it (local target).

A nested pytest runs one long case; once its role agents are up, the
controller (or one xdist worker) gets a signal. Every process of that run is
found by a marker in its environment, never by name, and must be gone within
a few seconds of the run's end; so must its network namespaces and veth links
(named by the pid that made them) and whatever it made in its TMPDIR. After a
SIGKILL nothing of the run can clean up: the next run's sweep must, and say so.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = [pytest.mark.selftest, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def signals_as_at_a_terminal() -> None:
    """The nested run takes SIGINT, SIGTERM and SIGHUP as a run started at a terminal does.

    A run started in the background by a shell without job control inherits SIGINT
    ignored, and Python then installs no KeyboardInterrupt handler: Ctrl-C would do nothing.
    """
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
# at scale 10 the relay sleeps 30 s before it splices: the signal finds the case running
LONG_CASE = "tests/tcp/test_tcp.py::test_tcp[splice-sleep-relay-relay]"
# the daemon and its peers (harness.relayd, harness.relayd.peer): the session timeout, scaled
RELAYD_CASE = "tests/relayd/test_relayd.py::test_relayd[splice-timeout]"
# two network namespaces with two veth links; the relay idles 30 s at scale 10
NETNS_CASE = "tests/packet/test_wire.py::test_udp_datagram_in_one_out[splice]"
MARK = "SPLICE_RUN_MARK"
NEEDS_NETNS = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                                 reason="needs root and iproute2 for network namespaces")


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


def namespaces_of(pids: set[int]) -> list[str]:
    """Network namespaces made by these processes (named sosplice-<pid>-..., harness/net/netns.py)."""
    if shutil.which("ip") is None:
        return []
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=15).stdout
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    return [n for n in names if n.startswith("sosplice-") and n.split("-")[1].isdigit()
            and int(n.split("-")[1]) in pids]


def links_of(pids: set[int]) -> list[str]:
    """veth ends of these processes' topologies left in this namespace (r<c|s><pid>x<n>, p...)."""
    if shutil.which("ip") is None:
        return []
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, timeout=15).stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if line.count(":") >= 2]
    return [n for n in names for pid in pids if len(n) > 2 and n[0] in "rp" and n[1] in "cs"
            and n[2:].startswith(f"{pid}x")]


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[1])


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc to find the run's processes")
@pytest.mark.parametrize(("how", "workers", "case"), [
    ("SIGTERM", 0, LONG_CASE), ("SIGHUP", 2, LONG_CASE), ("SIGTERM", 2, LONG_CASE), ("SIGKILL", 0, LONG_CASE),
    ("SIGKILL", 2, LONG_CASE), ("SIGKILL-worker", 2, LONG_CASE), ("SIGKILL", 0, RELAYD_CASE),
    pytest.param("SIGTERM", 0, NETNS_CASE, marks=NEEDS_NETNS),
    pytest.param("SIGKILL", 0, NETNS_CASE, marks=NEEDS_NETNS),
], ids=["sigterm", "sighup-xdist", "sigterm-xdist", "sigkill", "sigkill-xdist", "sigkill-one-worker",
        "sigkill-relayd", "sigterm-netns", "sigkill-netns"])
def test_run_end_leaves_nothing(how: str, workers: int, case: str, tmp_path: Path) -> None:
    mark = uuid.uuid4().hex
    tmpdir = tmp_path / "tmp"  # the nested run's TMPDIR: whatever it makes there must go
    tmpdir.mkdir()
    env = {**os.environ, MARK: mark, "TMPDIR": str(tmpdir)}
    env.pop("PYTEST_XDIST_WORKER", None)
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-n", str(workers),
            f"--basetemp={tmp_path / 'run'}", "--splice-time-scale=10", "--splice-modes=splice", case]
    out = (tmp_path / "out").open("w+")
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True, preexec_fn=signals_as_at_a_terminal)
    pids = {proc.pid}
    try:
        kind = "harness.relayd" if case == RELAYD_CASE else "harness.agent"
        wait_for(f"{kind} processes of the nested run",
                 lambda: len(agents(mark, kind)) >= 2 or proc.poll() is not None, 60)
        assert proc.poll() is None, "the nested run ended before its agents were up"
        pids |= set(marked(mark))  # its workers too: namespaces are named by their maker's pid
        if case == NETNS_CASE:
            assert namespaces_of(pids), "the nested run made no network namespace"
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
    if how.startswith("SIGKILL"):
        # nothing could clean up after a SIGKILL: the next run's sweep must
        after = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:randomly", "--co",
                                "tests/selftest/test_leash.py"], cwd=ROOT, env={**env, MARK: uuid.uuid4().hex},
                               capture_output=True, text=True, timeout=120)
        output += "\n--- the next run:\n" + after.stdout[-2000:]
        if case == NETNS_CASE and os.environ.get("PYTEST_XDIST_WORKER") is None:
            # with workers, another one's nested run may sweep them first: gone is what counts
            assert "sweep: removed" in after.stdout and "network namespace" in after.stdout, output[-3000:]
    assert not namespaces_of(pids), f"namespaces left: {namespaces_of(pids)}\n{output[-2000:]}"
    assert not links_of(pids), f"veth links left here: {links_of(pids)}\n{output[-2000:]}"
    made = sorted(p.name for p in tmpdir.iterdir())
    assert not made, f"left in the run's TMPDIR: {made}\n{output[-2000:]}"
    if how in ("SIGTERM", "SIGHUP"):
        assert status == pytest.ExitCode.INTERRUPTED, f"exit status {status}\n{output[-2000:]}"
        assert f"run ended by {how}" in output, output[-2000:]
    elif how == "SIGKILL":
        assert status == -signal.SIGKILL
    else:
        assert status != 0, f"a run that lost a worker must not pass\n{output[-2000:]}"
