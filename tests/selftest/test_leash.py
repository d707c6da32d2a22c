"""harness/leash: the watcher threads that end a process with its starter."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from harness import leash

# a peer's shape: leashed first, then SIGUSR1 blocked and waited for in the main thread
PEER = textwrap.dedent("""
    import signal, sys
    from harness import leash
    leash.end_with_parent()
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
    print("ready", flush=True)
    sys.stdin.readline()  # the signal comes while the main thread is busy elsewhere
    got = signal.sigtimedwait([signal.SIGUSR1], 10)
    print("got", None if got is None else got.si_signo, flush=True)
""")


@pytest.mark.skipif(getattr(os, "pidfd_open", None) is None, reason="no pidfd_open: no parent watcher thread")
def test_signal_blocked_by_main_thread_reaches_it() -> None:
    env = dict(os.environ, **{leash.PARENT_ENV: str(os.getpid())})
    proc = subprocess.Popen([sys.executable, "-c", PEER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == "ready"
        os.kill(proc.pid, signal.SIGUSR1)
        out, _ = proc.communicate("go\n", timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, (f"the peer ended with {proc.returncode}: SIGUSR1 went to the watcher "
                                  "thread, whose default action ends the process")
    assert out.strip() == f"got {int(signal.SIGUSR1)}"
