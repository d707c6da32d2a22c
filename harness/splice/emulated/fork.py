"""A forked child's calls on a splice, answered by the process whose engine owns it.

The kernel has one splice per socket whoever holds a descriptor; here the
engine lives in the process that spliced. A child sends the socket itself
(SCM_RIGHTS), so the parent finds the splice by the open file, not by a
descriptor number; the answer comes back on a socket pair made for the request.
The child asks for the unsplice, the counter (`length`), the pending error
(`error`, which reading clears in the parent) and whether the socket is spliced.
"""

from __future__ import annotations

import contextlib
import os
import socket
from typing import TYPE_CHECKING

from ..api import oserror
from . import sounsplice

if TYPE_CHECKING:
    from .engine import Engine

ANSWER_TIMEOUT = 10.0


def ask(eng: Engine, op: str, sock: socket.socket) -> str:
    """In the child: one request about sock to the splicing process; its answer."""
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with mine:
        try:
            socket.send_fds(eng.ctl_child, [op.encode()], [sock.fileno(), theirs.fileno()])
        finally:
            theirs.close()
        mine.settimeout(ANSWER_TIMEOUT)
        try:
            answer = mine.recv(64).decode()
        except TimeoutError:
            raise oserror("EIO", "the splicing process did not answer") from None
    if answer == "":
        raise oserror("EIO", "the splicing process is gone")
    return answer


def request_unsplice(eng: Engine, source: socket.socket, unspliced_errno: str) -> None:
    """In the child: ask the splicing process to unsplice source; raise its answer."""
    answer = ask(eng, "unsplice", source)
    if answer != "0":
        raise oserror(unspliced_errno if answer == "EPROTO" else answer)


def request_number(eng: Engine, op: str, sock: socket.socket) -> int:
    """In the child: the parent's counter (`length`), pending error (`error`) or 1/0 (`spliced`)."""
    answer = ask(eng, op, sock)
    if not answer.isdigit():
        raise oserror(answer)
    return int(answer)


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
        if msg == b"unsplice":
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
            elif msg == b"spliced":
                answer = b"1" if fd in eng.links else b"0"
        with contextlib.suppress(OSError):
            os.write(reply_fd, answer)
    finally:
        os.close(sock_fd)
        os.close(reply_fd)
