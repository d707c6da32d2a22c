"""The application's calls on spliced sockets (3.9): soreceive, sosend, poll, shutdown, close, getsockopt.

Each reads the splice of the socket, whatever descriptor names it (errata 7).
"""

from __future__ import annotations

import errno
import os
import select
import socket
import time
from typing import TYPE_CHECKING

from ..api import Personality, oserror
from . import fork, loop, probe, somove

if TYPE_CHECKING:
    from .engine import Engine

FLUSH_CHUNK = 1 << 16


def length(eng: Engine, p: Personality, source: socket.socket) -> int:
    """getsockopt(SO_SPLICE): ssp_len of the last splice."""
    if p.length_listening and probe.listening(source):
        raise oserror(p.length_listening, "listening socket")
    if eng.pid != os.getpid():  # a forked child: the splice is the parent's
        return fork.request_number(eng, "length", source)
    with eng.cond:
        return eng.counters.get(eng.canon(source.fileno()), 0)


def error(eng: Engine, sock: socket.socket) -> int:
    """getsockopt(SO_ERROR): the error a splice left, else the kernel's; reading clears it."""
    if eng.pid != os.getpid():
        return fork.request_number(eng, "error", sock) or probe.so_error(sock)
    with eng.cond:
        err = eng.errors.pop(eng.canon(sock.fileno()), 0)
    return err or probe.so_error(sock)


def spliced(eng: Engine, sock: socket.socket) -> bool:
    if eng.pid != os.getpid():
        return fork.request_number(eng, "spliced", sock) == 1
    with eng.cond:
        return eng.canon(sock.fileno()) in eng.links


def poll_readable(eng: Engine, sock: socket.socket, timeout: float | None, exceptional: bool) -> bool:
    """soo_poll(): a spliced source is not readable until the splice ends or an error waits."""
    if eng.pid != os.getpid():
        return fork.poll_readable(eng, sock, timeout, exceptional)
    deadline = None if timeout is None else time.monotonic() + timeout
    if sock.fileno() < 0:
        raise oserror("EBADF", "socket closed")
    with eng.cond:
        while eng.canon(sock.fileno()) in eng.links:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            eng.cond.wait(left)
        if sock.fileno() < 0:
            raise oserror("EBADF", "socket closed while waiting")
        if eng.errors.get(eng.canon(sock.fileno())):
            return True
    left = None if deadline is None else max(0.0, deadline - time.monotonic())
    try:
        r, _, x = select.select([sock], [], [sock] if exceptional else [], left)
    except ValueError:  # closed by another thread (a case's alarm) since the check above
        raise oserror("EBADF", "socket closed") from None
    return bool(r or x)


def soreceive(eng: Engine, p: Personality, sock: socket.socket, size: int, flags: int) -> bytes:
    """A read: hidden while spliced (OpenBSD), then the data, then a pending error once."""
    if eng.pid != os.getpid():
        return fork.soreceive(eng, p, sock, size, flags)
    if flags & socket.MSG_OOB:
        return sock.recv(size, flags)
    nonblocking = sock.gettimeout() == 0.0 or bool(flags & socket.MSG_DONTWAIT)
    with eng.cond:
        if p.spliced_read_blocks and eng.canon(sock.fileno()) in eng.links:
            spliced_read(eng, sock, size, flags, nonblocking)
            if eng.canon(sock.fileno()) in eng.links:
                return b""
        fd = eng.canon(sock.fileno())
        err = eng.errors.get(fd, 0)
        if err:
            data = probe.recv_queued(sock, size, flags)
            if data:
                return data
            if not flags & socket.MSG_PEEK:
                eng.errors.pop(fd, None)
            raise OSError(err, os.strerror(err))
    return sock.recv(size, flags)


def spliced_read(eng: Engine, sock: socket.socket, size: int, flags: int, nonblocking: bool) -> None:
    """soreceive() on a spliced source, in the kernel's order (errata 3).

    Returns when the splice is gone (the caller reads), or with the splice still
    there when the read returns 0 (EOF with an empty buffer, a zero-length read).
    """
    rcvtimeo = probe.rcvtimeo(sock)
    wait = rcvtimeo or sock.gettimeout()
    deadline = time.monotonic() + wait if wait else None
    while (fd := eng.canon(sock.fileno())) in eng.links:
        err = eng.errors.get(fd, 0)
        if err:
            if not flags & socket.MSG_PEEK:
                eng.errors.pop(fd, None)
            raise OSError(err, os.strerror(err))
        if probe.fionread(sock) == 0 and probe.peek_eof(sock):
            return
        if size == 0:
            return
        if nonblocking:
            raise BlockingIOError(errno.EAGAIN, os.strerror(errno.EAGAIN))
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            if rcvtimeo:
                raise BlockingIOError(errno.EAGAIN, "SO_RCVTIMEO expired on a spliced source")
            raise TimeoutError("timed out")
        eng.cond.wait(left)


def sosend(eng: Engine, sock: socket.socket, data: bytes, flags: int) -> int:
    """A write: EPIPE when shut, then a pending error, then BSD's datagram bound; a blocked writer
    on a spliced drain waits for the unsplice (errata 4, 5)."""
    if eng.cant_send_more(sock):
        # errata 5: sosend tests SS_CANTSENDMORE before so_error, which stays pending
        raise oserror("EPIPE", "socket is shut for writing")
    with eng.cond:
        err = eng.errors.pop(eng.canon(sock.fileno()), 0)
    if err:
        raise OSError(err, os.strerror(err))
    if sock.type == socket.SOCK_DGRAM and len(data) > probe.sndbuf(sock):
        # BSD sosend(): an atomic send larger than the send buffer; Linux would take it
        raise oserror("EMSGSIZE", "datagram larger than the send buffer")
    nonblocking = sock.gettimeout() == 0.0 or bool(flags & socket.MSG_DONTWAIT)
    with eng.cond:
        if nonblocking or eng.canon(sock.fileno()) not in eng.drains:
            return sock.send(data, flags)
        # a blocking BSD send() is one call: it copies while there is space and sleeps when there
        # is none; errata 4: sowwakeup skips a splice drain, so that sleep lasts until the unsplice
        view = memoryview(data)
        sent = 0
        try:
            with probe.nowait(sock) as s:
                while sent < len(data):
                    sent += s.send(view[sent:], flags | socket.MSG_DONTWAIT)
                    if sock.type != socket.SOCK_STREAM:
                        return sent
                return sent
        except BlockingIOError:
            pass
        while eng.canon(sock.fileno()) in eng.drains:
            eng.cond.wait()
    return sent + sock.send(view[sent:], flags)


def soshutdown(eng: Engine, sock: socket.socket, how: int) -> None:
    """shutdown(): SS_CANTSENDMORE noted, sorflush() of a TCP reader, then a pass of each splice."""
    with eng.cond:
        sock.shutdown(how)
        fd = sock.fileno()
        if how in (socket.SHUT_WR, socket.SHUT_RDWR):
            ident = eng.ident(fd)
            if ident is not None:
                eng.shut_wr.add(ident)
        if how in (socket.SHUT_RD, socket.SHUT_RDWR) and probe.is_tcp(sock):
            with probe.nowait(sock) as s:
                _flush(s)
        fd = eng.canon(fd)
        for link in list(eng.links.values()):
            if fd in (link.sfd, link.dfd):
                somove.somove(eng, link)


def _flush(sock: socket.socket) -> None:
    """sorflush(): queued data is discarded."""
    while True:
        try:
            if not sock.recv(FLUSH_CHUNK, socket.MSG_DONTWAIT):
                return
        except OSError:
            return


def soclose(eng: Engine, sock: socket.socket) -> None:
    """close(): the splices of the descriptor end, its state is forgotten."""
    with eng.cond:
        fd = sock.fileno()
        if fd >= 0:
            ident = eng.ident(fd)
            eng.forget_fd(fd)
            if ident is not None:
                eng.shut_wr.discard(ident)
            for key in [k for k in eng.hops if loop.owned_by(sock, k)]:
                del eng.hops[key]
        sock.close()
