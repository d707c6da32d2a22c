"""What an earlier run left when it died: found by the run's mark, never by a name.

Every run marks itself in its environment (SPLICE_RUN=<controller pid>.<its start
time>), so each process it starts carries the mark, whatever it execs. At the start
of a run, a process whose mark names a controller that is gone is a leftover: it is
ended by its id and reported in one line. The pid with the start time (from
/proc/PID/stat) names one process, not whoever has that pid today. A run's local
directory for ssh masters (`sosplice-run-*`, with an `owner` file) goes the same
way; remote directories are swept by the ssh target (SshHost.sweep_remote), network
namespaces (named by the pid that made them, harness/net/netns.py) by their registry.

As a pytest plugin (conftest's pytest_plugins), the controller marks the run and
sweeps before anything starts; the line shows in the header.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import tempfile
from pathlib import Path

import pytest

RUN_ENV = "SPLICE_RUN"
PROC = Path("/proc")
RUNDIR_PREFIX = "sosplice-run-"
SWEPT = pytest.StashKey[list[str]]()


def start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (clock ticks since boot), or None for no such process."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def this_run() -> str:
    """The mark of a run whose controller is this process."""
    return f"{os.getpid()}.{start_time(os.getpid()) or 0}"


def mark_run() -> str:
    """The controller marks the run; its workers and every process they start inherit it."""
    os.environ[RUN_ENV] = this_run()
    return os.environ[RUN_ENV]


def machine() -> str:
    """This machine since its boot: a pid and start time mean something only here."""
    boot = ""
    with contextlib.suppress(OSError):
        boot = (PROC / "sys/kernel/random/boot_id").read_text().strip()
    return f"{socket.gethostname()}/{boot}"


def owner() -> str:
    """Who a directory belongs to: this machine and this run (an `owner` file holds it)."""
    return f"{machine()} {os.environ.get(RUN_ENV) or this_run()}"


def run_alive(mark: str) -> bool:
    pid, _, started = mark.partition(".")
    return pid.isdigit() and start_time(int(pid)) == started


def owner_gone(line: str) -> bool:
    """The directory's owner is a run of this machine that has ended."""
    host, _, mark = line.strip().partition(" ")
    return host == machine() and bool(mark) and not run_alive(mark)


def mark_of(pid: int) -> str | None:
    try:
        env = (PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return None
    prefix = RUN_ENV.encode() + b"="
    for item in env.split(b"\0"):
        if item.startswith(prefix):
            return item[len(prefix):].decode(errors="replace")
    return None


def leftovers() -> dict[int, str]:
    """pid -> mark of every process marked by a run whose controller is gone."""
    found: dict[int, str] = {}
    if not PROC.is_dir():
        return found
    mine = os.getpid()
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == mine:
            continue
        mark = mark_of(int(entry.name))
        if mark and not run_alive(mark):
            found[int(entry.name)] = mark
    return found


def sweep() -> str:
    """End the leftovers of earlier runs; one line saying what was ended, or "" for none."""
    found = leftovers()
    for pid in found:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    if not found:
        return ""
    runs = sorted({mark.split(".")[0] for mark in found.values()})
    return (f"swept {len(found)} process(es) left by earlier run(s) (controller pid "
            f"{', '.join(runs)}, gone): pids {' '.join(map(str, sorted(found)))}")


def sweep_rundirs(parent: str | None = None) -> str:
    """Remove the local run directories whose run has ended; one line, or ""."""
    removed = []
    for d in sorted(Path(parent or tempfile.gettempdir()).glob(f"{RUNDIR_PREFIX}*")):
        try:
            line = (d / "owner").read_text()
        except OSError:
            continue  # not marked: an older run's, or one being made now
        if owner_gone(line):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d.name)
    return f"removed {len(removed)} run directory(ies) of earlier runs: {' '.join(removed)}" if removed else ""


def sweep_namespaces() -> str:
    """Delete the network namespaces (and their veth links) of dead processes of this suite; one line, or ""."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("ip") is None:
        return ""
    from .net import netns

    try:
        removed = netns.sweep_stale()
    except netns.NetError:
        return ""
    return f"removed {len(removed)} network namespace(s) of dead processes: {' '.join(removed)}" if removed else ""


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return  # an xdist worker: the controller marked the run, workers inherit the mark
    mark_run()
    config.stash[SWEPT] = [line for line in (sweep(), sweep_rundirs(), sweep_namespaces()) if line]


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [f"sweep: {line}" for line in config.stash.get(SWEPT, [])]
