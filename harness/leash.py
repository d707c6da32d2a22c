"""Processes of a run end with whoever started them, however that one ends (stdlib only).

A helper of the run (a role agent, the relay daemon, a peer, a perf process) is
started in a session of its own, so that its end can take its whole process group;
that also cuts it loose from the controller. These tie it back:

    end_with_parent()  the starter named by SPLICE_PARENT_PID is watched through a pidfd
    end_with_stdin()   the end of stdin (on a remote: the ssh session's end) ends the group
    die_with_starter   a preexec_fn for programs that are not ours (sshd, haproxy, socat, iperf3):
                       PR_SET_PDEATHSIG, SIGKILL when the starting thread is gone (Linux)
    guard(pid)         a watcher process that ends pid when we are gone (an ssh master that
                       went to the background, where PR_SET_PDEATHSIG does not follow)

Each ends only its own process group, and only as that group's leader.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Callable

PR_SET_PDEATHSIG = 1
PARENT_ENV = "SPLICE_PARENT_PID"


def parent_env() -> dict[str, str]:
    """The variable a child of this process reads in end_with_parent()."""
    return {PARENT_ENV: str(os.getpid())}


def end_group() -> None:
    """SIGKILL for this process group when this process leads it, else for this process."""
    if os.getpgrp() == os.getpid():
        os.killpg(os.getpgrp(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def lead_group() -> None:
    """Become a process-group leader, so that end_group() takes what this process forks."""
    if os.getpgrp() != os.getpid() and os.getsid(0) != os.getpid():
        with contextlib.suppress(OSError):
            os.setpgid(0, 0)


def start_watcher(watch: Callable[[], None], name: str) -> None:
    """A daemon thread that takes no signals: each still reaches the main thread.

    A signal the main thread blocks (a peer waits for SIGUSR1 in sigtimedwait) would
    otherwise be delivered to the watcher, and its default action end the process.
    The thread inherits the mask it is started under, so no signal falls in between.
    """
    saved = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        threading.Thread(target=watch, name=name, daemon=True).start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, saved)


def end_with_parent() -> None:
    """The group ends when the process in SPLICE_PARENT_PID is gone, SIGKILL included.

    That process may be our parent or behind a wrapper that execs (ip netns exec). Where
    pidfds do not exist (BSD, old Linux) the controller's own cleanup is all there is.
    """
    parent = os.environ.get(PARENT_ENV, "")
    pidfd_open = getattr(os, "pidfd_open", None)
    if not parent.isdigit() or pidfd_open is None or os.getpgrp() != os.getpid():
        return  # only a group leader ends its group: never anyone else's
    try:
        fd = pidfd_open(int(parent))
    except ProcessLookupError:
        end_group()  # gone before we could watch it
        return
    except OSError:
        return

    def watch() -> None:
        select.select([fd], [], [])
        end_group()

    start_watcher(watch, "parent-watch")


def end_with_stdin() -> None:
    """The group ends when stdin reaches its end: the starter closed it, or went away."""

    def watch() -> None:
        try:
            while os.read(sys.stdin.fileno(), 4096):
                pass
        except (OSError, ValueError):
            pass
        end_group()

    start_watcher(watch, "stdin-watch")


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    func: Callable[..., int] = libc.prctl
    return func


_PRCTL = _prctl()


def die_with_starter() -> None:
    """preexec_fn: this child gets SIGKILL when the thread that started it ends (Linux only)."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


# the guard: a process of its own that outlives a SIGKILL of its starter (see guard())
GUARD = """\
import os, select, signal, sys
target = os.pidfd_open(int(sys.argv[2]))
try:
    starter = os.pidfd_open(int(sys.argv[1]))
except ProcessLookupError:
    starter = None
if starter is None or target not in select.select([starter, target], [], [])[0]:
    signal.pidfd_send_signal(target, signal.SIGTERM)
"""


def guard(pid: int) -> None:
    """End `pid` (SIGTERM) when this process is gone, for a helper that cannot watch by itself
    (an ssh master that went to the background). The guard ends when either one ends."""
    if getattr(os, "pidfd_open", None) is None:
        return
    subprocess.Popen([sys.executable, "-I", "-S", "-c", GUARD, str(os.getpid()), str(pid)],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)
