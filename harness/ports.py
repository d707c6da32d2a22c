"""Listening ports that a stock OpenBSD host lets through (stdlib only: travels with the agent).

OpenBSD's default pf.conf says `block return in on ! lo0 proto tcp to port 6000:6010` (X11),
and its kernel hands out ports from 1024 up for a bind to port 0, so a relay listener on a
VM's external address could land on a port that this machine cannot reach.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

PF_BLOCKED = range(6000, 6011)
TRIES = 32


def bind_reachable(make: Callable[[], socket.socket], host: str) -> socket.socket:
    """A socket from `make`, bound to port 0 on host, on a port outside PF_BLOCKED.

    A socket that got a blocked port stays bound until the end, so that the kernel
    hands out another one to the next try.
    """
    held: list[socket.socket] = []
    try:
        for _ in range(TRIES):
            s = make()
            s.bind((host, 0))
            if s.getsockname()[1] not in PF_BLOCKED:
                return s
            held.append(s)
        raise OSError(f"no port outside {PF_BLOCKED.start}-{PF_BLOCKED.stop - 1} in {TRIES} binds on {host}")
    finally:
        for s in held:
            s.close()
