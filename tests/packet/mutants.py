"""Deliberately wrong splicers that the packet cases must catch (for `--splice-backend`).

    pytest tests/packet --splice-modes splice --splice-backend tests.packet.mutants:MovesBeforeConnected

Each patches the emulation inside the relay process only (the agent loads one splicer).
"""

from __future__ import annotations

import contextlib
import errno
import socket

from harness.splice import emulated
from harness.splice.api import Personality
from harness.splice.emulated import EmulatedSplicer, Engine, Link


class MovesBeforeConnected(EmulatedSplicer):
    """Moves data while the drain is still connecting: BSD's sosend says ENOTCONN, the splice
    ends with it and the data never reaches the server."""

    def __init__(self, personality: Personality) -> None:
        super().__init__(personality)
        checks = Engine._checks

        def early(engine: Engine, link: Link) -> int | None:
            if engine._connecting(link.drain) and emulated._fionread(link.source) > 0:
                return errno.ENOTCONN
            return checks(engine, link)

        Engine._checks = early  # type: ignore[method-assign,assignment]


class ShutsDrainAtEof(EmulatedSplicer):
    """Passes the source's EOF on: shuts the drain down (FIN) when the source hits EOF."""

    def __init__(self, personality: Personality) -> None:
        super().__init__(personality)
        finish = Engine._finish

        def eof_fin(engine: Engine, link: Link, err: int, max_reached: bool, eof: bool) -> None:
            if eof:
                with contextlib.suppress(OSError):
                    link.drain.shutdown(socket.SHUT_WR)
            finish(engine, link, err, max_reached, eof)

        Engine._finish = eof_fin  # type: ignore[method-assign,assignment]
