"""Deliberately wrong splicers that the packet cases must catch (for `--splice-backend`).

    pytest tests/packet --splice-modes splice --splice-backend tests.packet.mutants:MovesBeforeConnected

Each patches the emulation inside the relay process only (the agent loads one splicer).
"""

from __future__ import annotations

import contextlib
import errno
import socket
from typing import Any

from harness.splice.api import Personality
from harness.splice.emulated import EmulatedSplicer, Engine, Link, probe, somove
from tests.selftest.mutants import around


class MovesBeforeConnected(EmulatedSplicer):
    """Moves data while the drain is still connecting: BSD's sosend says ENOTCONN, the splice
    ends with it and the data never reaches the server."""

    def __init__(self, personality: Personality) -> None:
        super().__init__(personality)

        def early(checks: Any, eng: Engine, link: Link) -> int | None:
            if probe.connecting(link.drain) and probe.fionread(link.source) > 0:
                return errno.ENOTCONN
            result: int | None = checks(eng, link)
            return result

        around(somove, "checks", early)


class ShutsDrainAtEof(EmulatedSplicer):
    """Passes the source's EOF on: shuts the drain down (FIN) when the source hits EOF."""

    def __init__(self, personality: Personality) -> None:
        super().__init__(personality)

        def eof_fin(finish: Any, eng: Engine, link: Link, err: int, max_reached: bool, eof: bool) -> None:
            if eof:
                with contextlib.suppress(OSError):
                    link.drain.shutdown(socket.SHUT_WR)
            finish(eng, link, err, max_reached, eof)

        around(somove, "finish", eof_fin)
