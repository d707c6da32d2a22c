"""The relay's account of its source stream, for the conservation check (harness.checks).

Upstream checks nothing where a case is `nocheck` (resets, aborts, a forked
unsplice, max with a client that ignores its errors). To say that no byte was
lost or sent twice there, the relay keeps, in source order, what became of the
bytes of its source: spliced (the splice counter), copied to the drain by the
relay itself, read by the relay and not forwarded (bytes after max in copy
mode, "sysread stdin has data" after an unsplice, a buffer whose send failed),
flushed by shutdown(SHUT_RD), and, at the end, what was still left readable on
the source. With the case's `conserve` word the relay logs it as SOURCE lines
when it closes; the client logs SENT, the bytes its kernel accepted.

    SOURCE: spliced N | copied N | read N MD5 | ended ERRNO | flushed
    SOURCE: left N MD5 HOW [LENGTHS]     HOW: eof, open (no EOF seen), quiet (UDP), ERRNO
    SOURCE: left ? closed                the source was closed before the end

Stdlib only: this module travels to the remote host with the agent.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import select
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .splice.api import errno_name

if TYPE_CHECKING:
    from .steps import Ctx

CONSERVE_MODES = ("exact", "prefix")
LEFT_LIMIT = 1 << 24  # never read more than this at the end
READ_SIZE = 1 << 16
EXACT_WAIT = 5.0  # seconds (at least) an exact case waits at the end for the source's EOF
UDP_QUIET = 0.1  # seconds (at least) without a datagram before the rest counts as all there


@dataclass
class Ledger:
    entries: list[tuple[str, ...]] = field(default_factory=list)
    pending: bool = False  # a splice started whose counter was not read yet

    def _add_count(self, kind: str, n: int) -> None:
        if self.entries and self.entries[-1][0] == kind:
            n += int(self.entries[-1][1])
            self.entries.pop()
        self.entries.append((kind, str(n)))

    def splicing(self) -> None:
        self.pending = True

    def spliced(self, n: int | None) -> None:
        """The counter of the splice that just ended (None: could not be read)."""
        self.pending = False
        if n is None:
            self.entries.append(("spliced", "?"))
        else:
            self._add_count("spliced", n)

    def copied(self, n: int) -> None:
        if n:
            self._add_count("copied", n)

    def read(self, data: bytes) -> None:
        """Bytes (or a datagram, or its head) the relay read from its source and did not forward."""
        self.entries.append(("read", str(len(data)), hashlib.md5(data).hexdigest()))

    def ended(self, err: int) -> None:
        """The SO_ERROR the relay found on its source when a splice ended."""
        self.entries.append(("ended", errno_name(err)))

    def flushed(self) -> None:
        """shutdown(SHUT_RD) discarded what was queued: later bytes have no known offset."""
        self.entries.append(("flushed",))

    def lines(self) -> list[str]:
        return ["SOURCE: " + " ".join(e) for e in self.entries]


def ledger(ctx: Ctx) -> Ledger:
    book: Ledger = ctx.vars.setdefault("ledger", Ledger())
    return book


def report(ctx: Ctx) -> None:
    """At the relay's end, before its sockets close: what is left on the source, then the ledger.

    "exact" waits (bounded) for the source's EOF, reading everything still coming;
    otherwise what is queued now is peeked, so that the close still finds it unread.
    The source is read directly, as the kernel holds it, not through the splicer.
    """
    book = ledger(ctx)
    sock = ctx.stdin
    mode = ctx.vars.get("conserve", "")
    if book.pending:
        n: int | None = None
        if sock is not None and sock.fileno() >= 0:
            with contextlib.suppress(OSError):
                n = ctx.splicer.length(sock)
        book.spliced(n)
    if sock is None or sock.fileno() < 0:
        book.entries.append(("left", "?", "closed"))
    else:
        with contextlib.suppress(OSError):
            ctx.splicer.unsplice(sock)  # as close_like_bsd does next; nothing is spliced at the end
        if sock.type == socket.SOCK_STREAM:
            book.entries.append(_left_stream(ctx, sock, mode == "exact"))
        else:
            book.entries.append(_left_datagrams(ctx, sock, mode == "exact"))
    for line in book.lines():
        ctx.log(line)


def _left_stream(ctx: Ctx, sock: socket.socket, wait_eof: bool) -> tuple[str, ...]:
    if not wait_eof:
        # peeked, not read: reading would open the window and let a client finish that the
        # case means to be reset by the close of a source with unread data
        try:
            queued = sock.recv(LEFT_LIMIT, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            queued = b""
        except OSError as e:
            return ("left", "0", hashlib.md5().hexdigest(), errno_name(e.errno or errno.EIO))
        return ("left", str(len(queued)), hashlib.md5(queued).hexdigest(), "open")
    md5 = hashlib.md5()
    total = 0
    how = "open"
    deadline = time.monotonic() + max(EXACT_WAIT, ctx.seconds(20))
    while total < LEFT_LIMIT:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([sock], [], [], left)[0]:
            break
        try:
            buf = sock.recv(READ_SIZE, socket.MSG_DONTWAIT)
        except BlockingIOError:
            continue
        except OSError as e:
            how = errno_name(e.errno or errno.EIO)
            break
        if not buf:
            how = "eof"
            break
        md5.update(buf)
        total += len(buf)
    return ("left", str(total), md5.hexdigest(), how)


def _left_datagrams(ctx: Ctx, sock: socket.socket, wait_quiet: bool) -> tuple[str, ...]:
    md5 = hashlib.md5()
    lengths: list[int] = []
    how = "open"
    quiet = max(UDP_QUIET, ctx.seconds(0.5))
    while sum(lengths) < LEFT_LIMIT:
        if wait_quiet and not select.select([sock], [], [], quiet)[0]:
            how = "quiet"
            break
        try:
            buf = sock.recv(READ_SIZE, socket.MSG_DONTWAIT)
        except BlockingIOError:
            if wait_quiet:
                continue
            break
        except OSError as e:
            how = errno_name(e.errno or errno.EIO)
            break
        md5.update(buf)
        lengths.append(len(buf))
    return ("left", str(sum(lengths)), md5.hexdigest(), how, ",".join(map(str, lengths)) or "-")
