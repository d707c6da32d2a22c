"""Deliberately wrong splicers: the suite must catch each of them.

Each is loaded into the relay (or API) agent through `--splice-backend
tests.selftest.mutants:NAME`; tests/selftest/test_mutation.py runs the cases
that must fail with it. A mutant changes one rule of the emulation, inside its
own agent process only.
"""

from __future__ import annotations

import dataclasses
import errno
import socket
from typing import Any

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


class _SplittingSocket(socket.socket):
    """A drain that sends every datagram as two halves."""

    def send(self, data: Any, flags: int = 0) -> int:
        if len(data) < 2:
            return super().send(data, flags)
        half = len(data) // 2
        return super().send(data[:half], flags) + super().send(data[half:], flags)


class _MergingSocket(socket.socket):
    """A drain that holds datagrams and sends what one pass moved as one."""

    held = b""

    def send(self, data: Any, flags: int = 0) -> int:
        self.held += bytes(data)
        return len(data)

    def flush(self) -> None:
        if self.held:
            super().send(self.held)
            self.held = b""


class SplitDatagrams(EmulatedSplicer):
    """Splits each datagram in two."""

    def _link(self, source: socket.socket, drain: socket.socket, max: int, idle: float) -> None:
        super()._link(source, _SplittingSocket(fileno=drain.detach()), max, idle)


class MergeDatagrams(EmulatedSplicer):
    """Merges the datagrams moved in one pass into one."""

    def __init__(self, personality: Personality) -> None:
        super().__init__(personality)
        original = emulated.Engine._pass_datagram

        def merged(engine: emulated.Engine, link: emulated.Link) -> None:
            original(engine, link)
            if isinstance(link.drain, _MergingSocket) and link.drain.fileno() >= 0:
                link.drain.flush()

        emulated.Engine._pass_datagram = merged  # type: ignore[method-assign,assignment]

    def _link(self, source: socket.socket, drain: socket.socket, max: int, idle: float) -> None:
        super()._link(source, _MergingSocket(fileno=drain.detach()), max, idle)


class EfbigWhenNotFit(EmulatedSplicer):
    """Raises EFBIG when the next datagram does not fit under max (only an exact hit may)."""

    def __init__(self, personality: Personality) -> None:
        super().__init__(personality)
        original = emulated.Engine._finish

        def finish(engine: emulated.Engine, link: emulated.Link, err: int, max_reached: bool,
                   eof: bool) -> None:
            if not link.tcp and max_reached and not err and engine.counters[link.sfd] < link.max:
                err = errno.EFBIG
            original(engine, link, err, max_reached, eof)

        emulated.Engine._finish = finish  # type: ignore[method-assign,assignment]


class NoEmsgsize(EmulatedSplicer):
    """Sends a datagram larger than the drain's send buffer instead of ending with EMSGSIZE."""

    def __init__(self, personality: Personality) -> None:
        super().__init__(personality)
        emulated._sndbuf = lambda s: 1 << 30


# ---- wrong splicers of the errata rules (semantics 0), one rule each


class SpliceByDescriptor(EmulatedSplicer):
    """Keeps a splice under the descriptor number: another descriptor of the socket sees none."""

    def __init__(self, personality: Personality) -> None:
        super().__init__(personality)
        emulated.Engine.canon = lambda self, fd: fd  # type: ignore[method-assign]


class ErrorBeforeEpipe(EmulatedSplicer):
    """send() hands out the pending error before it tests for a socket shut for writing."""

    def send(self, sock: socket.socket, data: bytes, flags: int = 0) -> int:
        err = self.error(sock)
        if err:
            raise OSError(err, "pending error")
        return super().send(sock, data, flags)


class ShutDrainIgnored(EmulatedSplicer):
    """Forgets that a socket was shut for writing (a UDP drain keeps its splice)."""

    def __init__(self, personality: Personality) -> None:
        super().__init__(personality)
        emulated.Engine.cant_send_more = lambda self, s: False  # type: ignore[method-assign]


class EveryLookRearms(EmulatedSplicer):
    """Re-arms the idle timer on the engine's own looks at the drain, as if each were a wakeup."""

    def __init__(self, personality: Personality) -> None:
        super().__init__(personality)
        emulated.Engine._woken = staticmethod(lambda link, marks: True)  # type: ignore[method-assign]


class NoSilentWakeups(EmulatedSplicer):
    """Runs passes only on what poll reports: source data and acknowledgements into a full drain re-arm nothing."""

    def __init__(self, personality: Personality) -> None:
        super().__init__(personality)
        emulated.Engine._woken = staticmethod(lambda link, marks: False)  # type: ignore[method-assign]


class ZeroReadWaits(EmulatedSplicer):
    """A zero-length read on a spliced source waits for the unsplice."""

    def recv(self, sock: socket.socket, size: int, flags: int = 0) -> bytes:
        if size == 0 and self.spliced(sock):
            self.wait_readable(sock, None)
        return super().recv(sock, size, flags)


class ReadIgnoresTimeout(EmulatedSplicer):
    """A read on a spliced source waits for the unsplice whatever SO_RCVTIMEO or the socket timeout say."""

    def recv(self, sock: socket.socket, size: int, flags: int = 0) -> bytes:
        if self.spliced(sock) and not flags & socket.MSG_DONTWAIT and sock.gettimeout() != 0.0:
            self.wait_readable(sock, None)
        return super().recv(sock, size, flags)


class DrainWriterWoken(EmulatedSplicer):
    """A writer blocked on a spliced drain is woken as soon as space frees."""

    def send(self, sock: socket.socket, data: bytes, flags: int = 0) -> int:
        if self.engine.canon(sock.fileno()) in self.engine.drains:
            return sock.send(data, flags)
        return super().send(sock, data, flags)


class OptionLeftBehind(EmulatedSplicer):
    """Does not put back the IP_PKTINFO it set on a UDP source when the splice ends."""

    def __init__(self, personality: Personality) -> None:
        super().__init__(personality)
        original = emulated.Engine.dissolve

        def dissolve(engine: emulated.Engine, link: emulated.Link, error: int = 0) -> None:
            link.pktinfo_saved = None
            original(engine, link, error)

        emulated.Engine.dissolve = dissolve  # type: ignore[method-assign,assignment]


class ConnectingDrainHoldsEof(EmulatedSplicer):
    """Skips the whole pass while the drain connects, EOF test included."""

    def __init__(self, personality: Personality) -> None:
        super().__init__(personality)
        original = emulated.Engine._pass_stream

        def pass_stream(engine: emulated.Engine, link: emulated.Link) -> None:
            if emulated._tcp_state(link.drain) in emulated._CONNECTING:
                link.waiting = True
                engine._sync(link.sfd, link.dfd)
                return
            original(engine, link)

        emulated.Engine._pass_stream = pass_stream  # type: ignore[method-assign,assignment]
