"""Deliberately wrong splicers: the suite must catch each of them.

Each is loaded into the relay (or API) agent through `--splice-backend
tests.selftest.mutants:NAME`; tests/selftest/test_mutation.py runs the cases
that must fail with it. A mutant changes one rule of the emulation, inside its
own agent process only.
"""

from __future__ import annotations

import dataclasses
import socket

from harness.splice import emulated
from harness.splice.api import Personality
from harness.splice.emulated import EmulatedSplicer


class MaxOffByOne(EmulatedSplicer):
    """Moves one byte more than max."""

    def _link(self, source: socket.socket, drain: socket.socket, max: int, idle: float) -> None:
        super()._link(source, drain, max + 1 if max else 0, idle)


class EfbigMissing(EmulatedSplicer):
    """Stops at max but never reports EFBIG."""

    def __init__(self, personality: Personality) -> None:
        super().__init__(dataclasses.replace(personality, efbig=False))


class IdleIgnored(EmulatedSplicer):
    """Accepts an idle timeout and never applies it."""

    def _link(self, source: socket.socket, drain: socket.socket, max: int, idle: float) -> None:
        super()._link(source, drain, max, 0.0)


class EprotoSucceeds(EmulatedSplicer):
    """Answers success when unsplicing a socket that has no drain."""

    def _splice(self, source: socket.socket, fd: int, max: int, tv: tuple[int, int] | None) -> None:
        if fd < 0 and not self.spliced(source):
            return
        super()._splice(source, fd, max, tv)


class LengthOffByOne(EmulatedSplicer):
    """Reports one byte more than it moved."""

    def length(self, source: socket.socket) -> int:
        return super().length(source) + 1


class UrgentAsNormal(EmulatedSplicer):
    """Forwards inline urgent data as normal data: the urgent mark is lost."""

    def __init__(self, personality: Personality) -> None:
        super().__init__(personality)
        emulated._atmark = lambda s: False


class ReadReturnsData(EmulatedSplicer):
    """Lets a read on a spliced source return data, racing the mover."""

    def recv(self, sock: socket.socket, size: int, flags: int = 0) -> bytes:
        if self.spliced(sock):
            return sock.recv(size, flags)
        return super().recv(sock, size, flags)


class NeverEof(EmulatedSplicer):
    """Never notices EOF on the source: the splice outlives the connection."""

    def __init__(self, personality: Personality) -> None:
        super().__init__(personality)
        emulated.Engine._at_eof = lambda self, link: False  # type: ignore[method-assign]


class NoLoopDetection(EmulatedSplicer):
    """Moves data around a loop forever."""

    def __init__(self, personality: Personality) -> None:
        super().__init__(dataclasses.replace(personality, eloop=False))


class IgnoreMax(EmulatedSplicer):
    """Splices every body without its byte maximum."""

    def splice(self, source: socket.socket, drain: socket.socket | int, max: int = 0,
               idle: float = 0.0) -> None:
        super().splice(source, drain, 0, idle)
