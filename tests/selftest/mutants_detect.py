"""Wrong splicers for the detection cases of issue 13 (kinds 3-6): tests/api/detection.py must catch each.

Each breaks one rule the way a kernel (or emulator) change could: a read that tests the flag and
not the socket, an error handed out but kept, a short move taken for the end at max, an idle timer
re-armed only by bytes, kept from the last splice or never cancelled, the initial move left to the
mover thread or racing setsockopt's return, an idle value read with the wrong unit. CATCHERS names
the cases that must fail with each (merged into test_mutation.py); a selection may carry options
(personality, time scale).
"""

from __future__ import annotations

import math
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from harness.splice.api import Personality
from harness.splice.emulated import (
    EmulatedSplicer,
    Engine,
    Link,
    idle,
    probe,
    somove,
    sosplice,
    sounsplice,
)

from .mutants import Mutant, around

# ---- kind 3: reads on a spliced source, and the pending error they return


class PlainReadBypasses(EmulatedSplicer):
    """A read without MSG_DONTWAIT on a non-blocking spliced source goes to the socket (the flag is
    tested, not the socket's non-blocking mode), so it returns the data the mover has not moved."""

    def recv(self, sock: socket.socket, size: int, flags: int = 0) -> bytes:
        if self.spliced(sock) and sock.gettimeout() == 0.0 and not flags & socket.MSG_DONTWAIT:
            return sock.recv(size, flags)
        return super().recv(sock, size, flags)


class _ErrorLeftPending(EmulatedSplicer):
    """A read that meets the pending error leaves it pending; `as_eof`: and reports EOF instead."""

    as_eof = False

    def recv(self, sock: socket.socket, size: int, flags: int = 0) -> bytes:
        try:
            return super().recv(sock, size, flags)
        except BlockingIOError:
            raise
        except OSError as e:
            if not e.errno:
                raise
            with self.engine.cond:
                self.engine.errors[self.engine.canon(sock.fileno())] = e.errno
            if self.as_eof:
                return b""
            raise


class ErrorReadKept(_ErrorLeftPending):
    """A read fails with the pending error but leaves it pending, as if every read were MSG_PEEK."""


class ErrorReadAsEof(_ErrorLeftPending):
    """A read does not return the pending error: it reports EOF, and only SO_ERROR hands the error out."""

    as_eof = True


class ErrorBeforeData(EmulatedSplicer):
    """A read returns the pending error before the data queued in front of it."""

    def recv(self, sock: socket.socket, size: int, flags: int = 0) -> bytes:
        eng = self.engine
        if not flags & (socket.MSG_PEEK | socket.MSG_OOB) and not self.spliced(sock):
            with eng.cond:
                err = eng.errors.pop(eng.canon(sock.fileno()), 0)
            if err:
                raise OSError(err, "pending error")
        return super().recv(sock, size, flags)


class ShortMoveEndsMax(Mutant):
    """A pass whose amount was cut by drain space keeps "max reached": the splice ends below max, quietly."""

    def mutate(self) -> None:
        def finish(original: Any, eng: Engine, link: Link, err: int, max_reached: bool, eof: bool) -> None:
            if link.tcp and link.max and not err and not max_reached and eng.live(link):
                remaining = link.max - eng.counters[link.sfd]
                max_reached = 0 < remaining <= probe.fionread(link.source)
            original(eng, link, err, max_reached, eof)
        around(somove, "finish", finish)


class ShortMoveEndsMaxFreebsd(ShortMoveEndsMax):
    """ShortMoveEndsMax, run with the FreeBSD personality."""


# ---- kind 4: the idle timer across passes and splices


class ByteRearm(Mutant):
    """Only a pass that moved bytes re-arms the idle timer (a zero-length datagram does not)."""

    def mutate(self) -> None:
        def rearm(original: Any, eng: Engine, link: Link, counter: int, by_recheck: bool) -> None:
            if link.deadline is not None and counter == link.seen_counter:
                return
            original(eng, link, counter, by_recheck)
        around(idle, "rearm", rearm)


class IdleInherited(Mutant):
    """A splice without idle keeps the idle time of the socket's last splice (ssp_idletv not cleared)."""

    def mutate(self) -> None:
        last: dict[int, float] = {}

        def link_up(original: Any, eng: Engine, p: Personality, source: socket.socket, drain: socket.socket,
                    max: int, idle_s: float, fast: bool) -> None:
            idle_s = idle_s or last.get(source.fileno(), 0.0)
            last[source.fileno()] = idle_s
            original(eng, p, source, drain, max, idle_s, fast)
        around(sosplice, "link_up", link_up)


class StaleIdleTimer(Mutant):
    """The dissolve does not cancel the idle timer: it still fires on the socket's next splice."""

    def mutate(self) -> None:
        stale: dict[int, float] = {}

        def dissolve(original: Any, eng: Engine, link: Link, *args: Any) -> None:
            if eng.live(link) and link.deadline is not None:
                stale[link.sfd] = link.deadline
            original(eng, link, *args)

        def rearm(original: Any, eng: Engine, link: Link, counter: int, by_recheck: bool) -> None:
            original(eng, link, counter, by_recheck)
            left = stale.get(link.sfd)
            if left is not None and left > time.monotonic():
                link.deadline = left if link.deadline is None else min(link.deadline, left)
        around(sounsplice, "sounsplice", dissolve)
        around(idle, "rearm", rearm)


# ---- kind 5: the initial move


class AsyncInitialMove(Mutant):
    """setsockopt returns before the first pass: the mover thread moves the queued data when it wakes."""

    def mutate(self) -> None:
        def link(eng: Engine, link: Link) -> None:  # Engine.link without its somove()
            eng.links[link.sfd] = link
            eng.drains[link.dfd] = link.sfd
            eng.counters[link.sfd] = 0
            eng.remember(link.sfd)
            eng.remember(link.dfd)
            idle.start(link)
            eng.sync(link.sfd, link.dfd)
        Engine.link = link  # type: ignore[method-assign,assignment]


class InitialMoveRaced(Mutant):
    """setsockopt starts the first pass on a thread of its own and returns: who wins is luck."""

    def mutate(self) -> None:
        def first(eng: Engine, link: Link) -> None:
            with eng.cond:
                if eng.live(link):
                    somove.somove(eng, link)
                if eng.live(link):
                    eng.sync(link.sfd, link.dfd)

        def link(eng: Engine, link: Link) -> None:  # Engine.link, its somove() on a new thread
            eng.links[link.sfd] = link
            eng.drains[link.dfd] = link.sfd
            eng.counters[link.sfd] = 0
            eng.remember(link.sfd)
            eng.remember(link.dfd)
            idle.start(link)
            threading.Thread(target=first, args=(eng, link), daemon=True).start()
        Engine.link = link  # type: ignore[method-assign,assignment]


# ---- kind 6: the idle time's value


def _idle_as(change: Callable[[float], float]) -> None:
    """sosplice.link_up with the idle time (seconds) changed."""
    def link_up(original: Any, eng: Engine, p: Personality, source: socket.socket, drain: socket.socket,
                max: int, idle_s: float, fast: bool) -> None:
        original(eng, p, source, drain, max, change(idle_s), fast)
    around(sosplice, "link_up", link_up)


class IdleWholeSeconds(Mutant):
    """Drops tv_usec: a sub-second idle is no idle at all."""

    def mutate(self) -> None:
        _idle_as(math.floor)


class IdleRoundedUp(Mutant):
    """Rounds the idle time up to whole seconds (timer ticks of one second)."""

    def mutate(self) -> None:
        _idle_as(lambda s: float(math.ceil(s)))


class IdleSecondsIgnored(Mutant):
    """Reads only tv_usec: 1.3 s is 0.3 s (seen only where idle times reach a second: time scale 1)."""

    def mutate(self) -> None:
        _idle_as(lambda s: s % 1.0)


class IdleHalved(Mutant):
    """The timer runs at twice the rate: every idle time ends after half of it."""

    def mutate(self) -> None:
        _idle_as(lambda s: s / 2)


def _cases(*ids: str) -> list[str]:
    return [f"tests/api/test_api.py::test_api[{id}]" for id in ids]


FREEBSD = ["--splice-personality=freebsd"]
UNSCALED = ["--splice-time-scale=1"]
HERE = "tests.selftest.mutants_detect"
CATCHERS: dict[str, list[str]] = {f"{HERE}:{name}": selection for name, selection in {
    "PlainReadBypasses": _cases("detect-read-nonblocking-plain"),
    "ErrorReadKept": _cases("detect-read-error-reset", "detect-read-error-after-data"),
    "ErrorReadAsEof": _cases("detect-read-error-reset", "detect-read-error-after-data"),
    "ErrorBeforeData": _cases("detect-read-error-after-data"),
    "ShortMoveEndsMax": _cases("detect-max-drain-full"),
    "ShortMoveEndsMaxFreebsd": [*FREEBSD, *_cases("detect-max-drain-full-freebsd")],
    "ByteRearm": _cases("detect-idle-udp-zero"),
    "IdleInherited": _cases("detect-idle-resplice-none"),
    "StaleIdleTimer": _cases("detect-idle-resplice-none", "detect-idle-resplice-longer"),
    "AsyncInitialMove": _cases("detect-sync-initial-x20", "detect-sync-initial-max-x20"),
    "InitialMoveRaced": _cases("detect-sync-initial-x20", "detect-sync-initial-max-x20"),
    "IdleWholeSeconds": _cases("detect-idle-subsecond", "detect-idle-below-sleep"),
    "IdleRoundedUp": _cases("detect-idle-subsecond", "detect-idle-below-sleep"),
    "IdleSecondsIgnored": [*UNSCALED, *_cases("detect-idle-above-sleep")],
    "IdleHalved": _cases("detect-idle-above-sleep"),
}.items()}
