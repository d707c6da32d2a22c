"""pytest plugin: SIGTERM and SIGHUP end a run as Ctrl-C does.

A CI runner's SIGTERM, `timeout`'s, or a closed terminal's SIGHUP would
otherwise end the controller (or an xdist worker) on the spot, before any
fixture teardown: role agents, which run in their own sessions, would be left
behind. Turned into KeyboardInterrupt, the signal takes pytest's own
interrupted path: teardown, the end-of-run checks, exit status 2.
"""

from __future__ import annotations

import os
import select
import signal
import threading
from types import FrameType

import pytest

ENDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
ENDED_BY = pytest.StashKey[str]()


class EndedBySignal(KeyboardInterrupt):
    """The run was asked to end by a signal other than SIGINT."""


def pytest_configure(config: pytest.Config) -> None:
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread

    def end_run(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if ENDED_BY in config.stash:
            return  # already ending: let the cleanup finish
        config.stash[ENDED_BY] = name
        raise EndedBySignal(f"ended by {name}")

    for sig in ENDING_SIGNALS:
        signal.signal(sig, end_run)
    if hasattr(config, "workerinput"):
        end_with_controller()


WORKER_GRACE = 10.0  # seconds a worker whose controller is gone has for its teardown


def end_with_controller() -> None:
    """An xdist worker whose controller is gone (SIGKILL included) ends its run as on SIGTERM.

    Its teardown ends the role agents it started; if that does not finish within WORKER_GRACE,
    the worker exits anyway (the agents then end by themselves: agent.end_with_parent).
    """
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        return
    try:
        fd = pidfd_open(os.getppid())
    except OSError:
        return

    def watch() -> None:
        select.select([fd], [], [])
        os.kill(os.getpid(), signal.SIGTERM)
        threading.Event().wait(WORKER_GRACE)  # a deadline for the teardown, not a synchronisation
        os._exit(3)

    threading.Thread(target=watch, name="controller-watch", daemon=True).start()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    name = terminalreporter.config.stash.get(ENDED_BY, "")
    if name:
        terminalreporter.write_line(f"run ended by {name}: interrupted and cleaned up as after Ctrl-C",
                                    red=True)
