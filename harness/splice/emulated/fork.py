"""A forked child's calls on a splice, answered by the process whose engine owns it.

The kernel has one splice per socket whoever holds a descriptor; here the
engine lives in the process that spliced. A child sends the socket itself
(SCM_RIGHTS), so the parent finds the splice by the open file, not by a
descriptor number; the answer comes back on a socket pair made for the request.
The child asks for the unsplice, the counter (`length`), the pending error
(`error`, which reading clears in the parent; `pending`, which does not) and
whether the socket is spliced; its reads and poll on a spliced source wait for
the parent's unsplice (`await`: answered when the splice of that socket ends).
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import time
from typing import TYPE_CHECKING

from ..api import Personality, oserror
from . import probe, sounsplice

if TYPE_CHECKING:
    from .engine import Engine

ANSWER_TIMEOUT = 10.0


def ask(eng: Engine, op: str, sock: socket.socket, wait: float | None = ANSWER_TIMEOUT) -> str | None:
    """In the child: one request about sock to the splicing process; its answer.

    None when `wait` (None: no bound) passes first; only `await` is answered late.
    """
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with mine:
        try:
            socket.send_fds(eng.ctl_child, [op.encode()], [sock.fileno(), theirs.fileno()])
        finally:
            theirs.close()
        if not select.select([mine], [], [], wait)[0]:
            if op == "await":
                return None
            raise oserror("EIO", "the splicing process did not answer")
        answer = mine.recv(64).decode()
    if answer == "":
        raise oserror("EIO", "the splicing process is gone")
    return answer


def request_unsplice(eng: Engine, source: socket.socket, unspliced_errno: str) -> None:
    """In the child: ask the splicing process to unsplice source; raise its answer."""
    answer = ask(eng, "unsplice", source) or "EIO"
    if answer != "0":
        raise oserror(unspliced_errno if answer == "EPROTO" else answer)


def request_number(eng: Engine, op: str, sock: socket.socket) -> int:
    """In the child: the parent's counter (`length`), pending error (`error`, `pending`) or 1/0 (`spliced`)."""
    answer = ask(eng, op, sock) or "EIO"
    if not answer.isdigit():
        raise oserror(answer)
    return int(answer)


def await_unsplice(eng: Engine, sock: socket.socket, wait: float | None) -> bool:
    """In the child: sleep until the parent's splice of sock ends (True) or `wait` passes (False)."""
    return ask(eng, "await", sock, wait) is not None


def poll_readable(eng: Engine, sock: socket.socket, timeout: float | None, exceptional: bool) -> bool:
    """soo_poll() in a forked child: not readable while the parent's splice lasts (calls.poll_readable)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    spliced = request_number(eng, "spliced", sock)
    if spliced and (timeout == 0 or not await_unsplice(eng, sock, timeout)):
        return False
    if request_number(eng, "pending", sock):
        return True
    left = None if deadline is None else max(0.0, deadline - time.monotonic())
    r, _, x = select.select([sock], [], [sock] if exceptional else [], left)
    return bool(r or x)


def soreceive(eng: Engine, p: Personality, sock: socket.socket, size: int, flags: int) -> bytes:
    """soreceive() in a forked child, in the order of calls.soreceive and calls.spliced_read."""
    if flags & socket.MSG_OOB:
        return sock.recv(size, flags)
    peek = bool(flags & socket.MSG_PEEK)
    nonblocking = sock.gettimeout() == 0.0 or bool(flags & socket.MSG_DONTWAIT)
    if p.spliced_read_blocks:
        rcvtimeo = probe.rcvtimeo(sock)
        wait = rcvtimeo or sock.gettimeout()
        deadline = time.monotonic() + wait if wait else None
        while request_number(eng, "spliced", sock):
            err = request_number(eng, "pending" if peek else "error", sock)
            if err:
                raise OSError(err, os.strerror(err))
            if (probe.fionread(sock) == 0 and probe.peek_eof(sock)) or size == 0:
                return b""
            if nonblocking:
                raise BlockingIOError(errno.EAGAIN, os.strerror(errno.EAGAIN))
            left = None if deadline is None else deadline - time.monotonic()
            if (left is not None and left <= 0) or not await_unsplice(eng, sock, left):
                if rcvtimeo:
                    raise BlockingIOError(errno.EAGAIN, "SO_RCVTIMEO expired on a spliced source")
                raise TimeoutError("timed out")
    if request_number(eng, "pending", sock):
        data = probe.recv_queued(sock, size, flags)
        if data:
            return data
        err = request_number(eng, "pending" if peek else "error", sock)
        if err:
            raise OSError(err, os.strerror(err))
    return sock.recv(size, flags)


def answer_waiters(eng: Engine, fd: int) -> None:
    """In the parent, at the unsplice of fd: wake the children sleeping in `await` on it."""
    ident = eng.ident(fd)
    for reply_fd in eng.waiters.pop(ident, []) if ident is not None else []:
        with contextlib.suppress(OSError):
            os.write(reply_fd, b"0")
        os.close(reply_fd)


def _prune_waiters(eng: Engine) -> None:
    """Drop the waits of children that gave up (their end of the reply socket is closed)."""
    for ident, fds in list(eng.waiters.items()):
        alive = []
        for fd in fds:
            poller = select.poll()
            poller.register(fd, select.POLLHUP)
            if poller.poll(0):
                os.close(fd)
            else:
                alive.append(fd)
        if alive:
            eng.waiters[ident] = alive
        else:
            del eng.waiters[ident]


def serve(eng: Engine) -> None:
    """In the parent: one request, [op] with fds [socket, reply socket]."""
    try:
        msg, fds, _flags, _addr = socket.recv_fds(eng.ctl, 64, 2, socket.MSG_DONTWAIT)
    except BlockingIOError:
        return
    if len(fds) != 2:
        for fd in fds:
            os.close(fd)
        return
    sock_fd, reply_fd = fds
    answer = b"EINVAL"
    try:
        if msg == b"await":  # answered by answer_waiters() when the splice ends
            ident = eng.ident(sock_fd)
            fd = -1 if ident is None else eng.idents.get(ident, -1)
            if ident is not None and fd in eng.links:
                _prune_waiters(eng)
                eng.waiters.setdefault(ident, []).append(reply_fd)
                reply_fd = -1
            else:
                answer = b"0"
        elif msg == b"unsplice":
            answer = b"EPROTO"  # not spliced; the child names it per personality
            ident = eng.ident(sock_fd)
            link = next((ln for ln in eng.links.values() if eng.ident(ln.sfd) == ident), None)
            if link is not None:
                sounsplice.sounsplice(eng, link)
                answer = b"0"
        else:
            # by the open file only: the number the child's socket got here may once have been another's
            ident = eng.ident(sock_fd)
            fd = -1 if ident is None else eng.idents.get(ident, -1)
            if msg == b"length":  # ssp_len of the last splice of this socket
                answer = str(eng.counters.get(fd, 0)).encode()
            elif msg == b"error":  # the error a splice left; the child reads the kernel's itself
                answer = str(eng.errors.pop(fd, 0)).encode()
            elif msg == b"pending":
                answer = str(eng.errors.get(fd, 0)).encode()
            elif msg == b"spliced":
                answer = b"1" if fd in eng.links else b"0"
        if reply_fd >= 0:
            with contextlib.suppress(OSError):
                os.write(reply_fd, answer)
    finally:
        os.close(sock_fd)
        if reply_fd >= 0:
            os.close(reply_fd)
