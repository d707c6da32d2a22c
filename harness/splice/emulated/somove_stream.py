"""somove() for SOCK_STREAM: steps 2-11 of a pass over TCP (3.3), urgent data (3.5), EOF (3.6).

Data that has not moved stays in the source's receive buffer: a chunk is
peeked, sent, and only what the drain took is consumed (appendix A).
"""

from __future__ import annotations

import contextlib
import errno
import socket
import time
from typing import TYPE_CHECKING

from . import loop, probe, somove
from .link import SPACE_RECHECK, SPACE_RECHECK_MAX, Link

if TYPE_CHECKING:
    from .engine import Engine

CHUNK = 1 << 16  # bytes peeked per move step
SNDLOWAT = 2048  # OpenBSD's default SO_SNDLOWAT of a drain, MCLBYTES (3.3 step 3)
URGENT_SLACK = 1024  # urgent data may overfill the drain by this much, as send(MSG_OOB) may
_NOSIGNAL = getattr(socket, "MSG_NOSIGNAL", 0)


def move(eng: Engine, link: Link) -> None:
    src, dst = link.source, link.drain
    link.waiting = link.watch_eof = False
    link.recheck = None
    max_reached = eof = False
    err = 0
    while True:
        check = somove.checks(eng, link)
        if check is not None:
            err = check
            if check == 0 and link.waiting and probe.fionread(src) == 0:
                # errata 1: the move is skipped for a connecting drain, the EOF test is not
                eof = at_eof(eng, link)
                link.watch_eof = True
            elif check == 0 and link.waiting and link.personality.name == "freebsd":
                # errata 11, FreeBSD: data sent into a drain still connecting is lost, ENOTCONN
                lost = probe.fionread(src)
                if link.max:
                    lost = min(lost, link.max - eng.counters[link.sfd])
                with contextlib.suppress(OSError):
                    src.recv(lost, socket.MSG_DONTWAIT)
                err = errno.ENOTCONN
            break
        queued = probe.fionread(src)
        if queued == 0 and not link.oobinline:
            # Linux's FIONREAD stops at an out-of-line urgent mark; data may follow it
            try:
                queued = len(src.recv(CHUNK, probe.PEEK_NOWAIT))
            except OSError:
                queued = 0
        amount = queued
        if link.max:  # step 4: no more than max allows (3.4)
            remaining = link.max - eng.counters[link.sfd]
            if queued >= remaining:
                amount, max_reached = remaining, True
        if amount <= 0:
            eof = queued == 0 and at_eof(eng, link)
            if eof and eng.errors.get(link.sfd):
                err = eng.errors[link.sfd]
            break
        hops = loop.hops_for(eng, loop.source_key(link))
        if link.personality.eloop and hops.first() >= loop.M_MAXLOOP:
            err = errno.ELOOP
            break
        # 3.5; errata 11: FreeBSD forwards an inline urgent byte as plain data
        urgent = link.oobinline and link.personality.urgent_forwarded and probe.atmark(src)
        space = space_of(link)
        if space is not None:
            space += URGENT_SLACK if urgent else 0
            if space < amount:  # step 3: a short drain takes what fits, if SO_SNDLOWAT fits
                max_reached = False
                lowat = min(SNDLOWAT, probe.sndbuf(dst)) if link.personality.sndlowat else 1
                if space <= 0 or space < lowat:
                    if link.personality.eof_ends_full:
                        # errata 11, FreeBSD: nothing can move and the source is at EOF: the
                        # splice ends, the data it held back stays readable on the source
                        if probe.peer_shut(src):
                            eof = True
                            break
                        link.watch_eof = True
                    wait_for_space(link)
                    break
                amount = space
        if link.pipe is not None and not urgent and not probe.atmark(src):
            try:
                moved = link.pipe.move(src, dst, amount)
            except OSError as e:
                err = send_failed(eng, link, e)
                break
            if moved:
                eng.counters[link.sfd] += moved
                loop.note_out(eng, dst, hops.take(moved, datagram=False), link)
                link.space_short, link.recheck_wait = False, SPACE_RECHECK
                if max_reached and eng.counters[link.sfd] >= link.max:
                    break
                continue
            # nothing came: fall back to the byte path, which knows EAGAIN, EOF and marks
        try:
            chunk = src.recv(1 if urgent else min(amount, CHUNK), probe.PEEK_NOWAIT)
        except BlockingIOError:
            break
        if not chunk:
            # EOF behind an out-of-line urgent byte: Linux counts that byte in
            # FIONREAD but never returns it as data (3.5: it is not forwarded)
            eof = True
            break
        try:
            flags = socket.MSG_DONTWAIT | (socket.MSG_OOB if urgent else 0)
            sent = dst.send(chunk, flags | _NOSIGNAL)
        except BlockingIOError:
            link.waiting, max_reached = True, False
            break
        except OSError as e:
            src.recv(len(chunk), socket.MSG_DONTWAIT)  # the kernel loses it too
            err = send_failed(eng, link, e)
            break
        src.recv(sent, socket.MSG_DONTWAIT)
        eng.counters[link.sfd] += sent
        link.space_short, link.recheck_wait = False, SPACE_RECHECK
        loop.note_out(eng, dst, hops.take(sent, datagram=False), link)
        if sent < len(chunk):
            link.waiting, max_reached = True, False
            break
        if max_reached and eng.counters[link.sfd] >= link.max:
            break
    if eng.live(link):
        somove.finish(eng, link, err, max_reached, eof)


def send_failed(eng: Engine, link: Link, e: OSError) -> int:
    """The errno a failed move into the drain ends the splice with."""
    dst = link.drain
    if e.errno in (errno.ECONNRESET, errno.EPIPE) and probe.tcp_state(dst) == probe.CLOSE:
        # Linux hands the reset to this send and clears it; BSD leaves it in so_error
        eng.errors[link.dfd] = errno.ECONNRESET
    return errno.EPIPE if probe.cant_send(dst) or e.errno == errno.EPIPE else (e.errno or errno.EIO)


def space_of(link: Link) -> int | None:
    """Step 2: the drain's free send space as BSD counts it, SO_SNDBUF minus what is still queued."""
    queued = probe.outq(link.drain)
    return None if queued is None else probe.sndbuf(link.drain) - queued


def wait_for_space(link: Link) -> None:
    """Stop until the drain has BSD send space again.

    Linux reports writability by its own accounting, so the drain's
    TCP_NOTSENT_LOWAT is set to make POLLOUT mean "SO_SNDLOWAT fits" (unsent
    bytes only: on loopback the rest is acknowledged at once). When a wakeup
    still finds no space, the drain is looked at again after SPACE_RECHECK, then
    ever later (up to SPACE_RECHECK_MAX) while no data moves.
    """
    if link.space_short:
        link.recheck = time.monotonic() + link.recheck_wait
        link.recheck_wait = min(2 * link.recheck_wait, SPACE_RECHECK_MAX)
    else:
        link.waiting = True
    link.space_short = True
    if probe.TCP_NOTSENT_LOWAT is None:
        return
    bsd = probe.sndbuf(link.drain)
    mark = 2 * (bsd - min(SNDLOWAT, bsd)) + 2  # Linux wakes when 2 * unsent < mark
    with contextlib.suppress(OSError):
        if link.notsent_saved is None:
            link.notsent_saved = link.drain.getsockopt(socket.IPPROTO_TCP, probe.TCP_NOTSENT_LOWAT)
        link.drain.setsockopt(socket.IPPROTO_TCP, probe.TCP_NOTSENT_LOWAT, mark)


def at_eof(eng: Engine, link: Link) -> bool:
    """SS_CANTRCVMORE with nothing left: the peer's FIN is next (or an error, kept in so_error)."""
    try:
        return link.source.recv(1, probe.PEEK_NOWAIT) == b""
    except BlockingIOError:
        return False
    except OSError as e:
        eng.errors[link.sfd] = e.errno or errno.EIO
        return True
