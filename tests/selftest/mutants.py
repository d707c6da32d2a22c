"""Deliberately wrong splicers: the suite must catch each of them.

Each is loaded into the relay (or API) agent through `--splice-backend
tests.selftest.mutants:NAME`; tests/selftest/test_mutation.py runs the cases
that must fail with it. A mutant changes one rule of the emulation, inside its
own agent process only.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import os
import socket
from collections.abc import Callable
from typing import Any

from harness.splice.api import Personality
from harness.splice.emulated import (
    EmulatedSplicer,
    Engine,
    Link,
    idle,
    mmsg,
    probe,
    somove,
    somove_stream,
    sosplice,
    sounsplice,
)


def around(module: Any, name: str, wrapper: Callable[..., Any]) -> None:
    """Replace module.name by wrapper(original, *args): one rule changed, the rest as it was."""
    original = getattr(module, name)
    setattr(module, name, lambda *args, **kw: wrapper(original, *args, **kw))


class Mutant(EmulatedSplicer):
    """A wrong splicer that changes the emulation once, when the agent loads it."""

    def __init__(self, personality: Personality) -> None:
        super().__init__(personality)
        self.mutate()

    def mutate(self) -> None:
        pass


def _link_up_with(change: Callable[[socket.socket, int, float], tuple[socket.socket, int, float]]) -> None:
    """sosplice.link_up with the drain, max and idle changed."""
    def link_up(original: Any, eng: Engine, p: Personality, source: socket.socket, drain: socket.socket,
                max: int, idle_s: float, fast: bool) -> None:
        drain, max, idle_s = change(drain, max, idle_s)
        original(eng, p, source, drain, max, idle_s, fast)
    around(sosplice, "link_up", link_up)


class MaxOffByOne(Mutant):
    """Moves one byte more than max."""

    def mutate(self) -> None:
        _link_up_with(lambda drain, max, idle_s: (drain, max + 1 if max else 0, idle_s))


class EfbigMissing(EmulatedSplicer):
    """Stops at max but never reports EFBIG."""

    def __init__(self, personality: Personality) -> None:
        super().__init__(dataclasses.replace(personality, efbig=False))


class FreebsdEofWaitsForDrain(EmulatedSplicer):
    """FreeBSD played with OpenBSD's EOF: a full drain keeps the splice past the source's EOF."""

    def __init__(self, personality: Personality) -> None:
        super().__init__(dataclasses.replace(personality, eof_ends_full=False))


class IdleIgnored(Mutant):
    """Accepts an idle timeout and never applies it."""

    def mutate(self) -> None:
        _link_up_with(lambda drain, max, idle_s: (drain, max, 0.0))


class EprotoSucceeds(Mutant):
    """Answers success when unsplicing a socket that has no drain."""

    def mutate(self) -> None:
        def quiet(original: Any, eng: Engine, p: Personality, source: socket.socket, fd: int,
                  *rest: Any) -> None:
            if fd < 0 and not self.spliced(source):
                return
            original(eng, p, source, fd, *rest)
        around(sosplice, "sosplice", quiet)


class LengthOffByOne(EmulatedSplicer):
    """Reports one byte more than it moved."""

    def length(self, source: socket.socket) -> int:
        return super().length(source) + 1


class UrgentAsNormal(Mutant):
    """Forwards inline urgent data as normal data: the urgent mark is lost."""

    def mutate(self) -> None:
        probe.atmark = lambda s: False


class ReadReturnsData(EmulatedSplicer):
    """Lets a read on a spliced source return data, racing the mover."""

    def recv(self, sock: socket.socket, size: int, flags: int = 0) -> bytes:
        if self.spliced(sock):
            return sock.recv(size, flags)
        return super().recv(sock, size, flags)


class NeverEof(Mutant):
    """Never notices EOF on the source: the splice outlives the connection."""

    def mutate(self) -> None:
        somove_stream.at_eof = lambda eng, link: False


class NoLoopDetection(EmulatedSplicer):
    """Moves data around a loop forever."""

    def __init__(self, personality: Personality) -> None:
        super().__init__(dataclasses.replace(personality, eloop=False))


class IgnoreMax(EmulatedSplicer):
    """Splices every body without its byte maximum."""

    def splice(self, source: socket.socket, drain: socket.socket | int, max: int = 0,
               idle: float = 0.0) -> None:
        super().splice(source, drain, 0, idle)


def _datagram(batch: mmsg.Batch, i: int) -> bytes:
    """Peeked datagram i of the pass's batch."""
    return ctypes.string_at(batch.iovs[i].base, batch.lens[i])


class SplitDatagrams(Mutant):
    """Splits each datagram in two."""

    def mutate(self) -> None:
        def split(original: Any, batch: mmsg.Batch, fd: int, first: int, count: int, flags: int,
                  gso: bool = False) -> int:
            for i in range(first, first + count):
                data = _datagram(batch, i)
                if len(data) < 2:
                    os.write(fd, data)
                else:
                    os.write(fd, data[:len(data) // 2])
                    os.write(fd, data[len(data) // 2:])
            return count
        around(mmsg.Batch, "send", split)


class MergeDatagrams(Mutant):
    """Merges the datagrams moved in one pass into one."""

    def mutate(self) -> None:
        def merged(original: Any, batch: mmsg.Batch, fd: int, first: int, count: int, flags: int,
                   gso: bool = False) -> int:
            os.write(fd, b"".join(_datagram(batch, i) for i in range(first, first + count)))
            return count
        around(mmsg.Batch, "send", merged)


class EfbigWhenNotFit(Mutant):
    """Raises EFBIG when the next datagram does not fit under max (only an exact hit may)."""

    def mutate(self) -> None:
        def finish(original: Any, eng: Engine, link: Link, err: int, max_reached: bool, eof: bool) -> None:
            if not link.tcp and max_reached and not err and eng.counters[link.sfd] < link.max:
                err = errno.EFBIG
            original(eng, link, err, max_reached, eof)
        around(somove, "finish", finish)


class NoEmsgsize(Mutant):
    """Sends a datagram larger than the drain's send buffer instead of ending with EMSGSIZE."""

    def mutate(self) -> None:
        probe.sndbuf = lambda s: 1 << 30


# ---- wrong splicers of the errata rules (semantics 0), one rule each


class SpliceByDescriptor(Mutant):
    """Keeps a splice under the descriptor number: another descriptor of the socket sees none."""

    def mutate(self) -> None:
        Engine.canon = lambda self, fd: fd  # type: ignore[method-assign]


class ErrorBeforeEpipe(EmulatedSplicer):
    """send() hands out the pending error before it tests for a socket shut for writing."""

    def send(self, sock: socket.socket, data: bytes, flags: int = 0) -> int:
        err = self.error(sock)
        if err:
            raise OSError(err, "pending error")
        return super().send(sock, data, flags)


class ShutDrainIgnored(Mutant):
    """Forgets that a socket was shut for writing (a UDP drain keeps its splice)."""

    def mutate(self) -> None:
        Engine.cant_send_more = lambda self, s: False  # type: ignore[method-assign]


class EveryLookRearms(Mutant):
    """Re-arms the idle timer on the engine's own looks at the drain, as if each were a wakeup."""

    def mutate(self) -> None:
        idle.woken = lambda link, now_marks: True


class NoSilentWakeups(Mutant):
    """Runs passes only on what poll reports: source data and acknowledgements into a full drain re-arm nothing."""

    def mutate(self) -> None:
        idle.woken = lambda link, now_marks: False


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


class OptionLeftBehind(Mutant):
    """Does not put back the IP_PKTINFO it set on a UDP source when the splice ends."""

    def mutate(self) -> None:
        def restore(original: Any, link: Link) -> None:
            link.pktinfo_saved = None
            original(link)
        around(sounsplice, "restore_options", restore)


class ConnectingDrainHoldsEof(Mutant):
    """Skips the whole pass while the drain connects, EOF test included."""

    def mutate(self) -> None:
        def move(original: Any, eng: Engine, link: Link) -> None:
            if probe.connecting(link.drain):
                link.waiting = True
                eng.sync(link.sfd, link.dfd)
                return
            original(eng, link)
        around(somove_stream, "move", move)
