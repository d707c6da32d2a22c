"""A forked child's unsplice, carried out by the process whose engine owns the splice.

The kernel has one splice per socket whoever holds a descriptor; here the
engine lives in the process that spliced. A child sends the socket itself
(SCM_RIGHTS), so the parent finds the splice by the open file, not by a
descriptor number; the answer comes back on a socket pair made for the request.
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


def request_unsplice(eng: Engine, source: socket.socket, unspliced_errno: str) -> None:
    """In the child: ask the splicing process to unsplice source; raise its answer."""
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with mine:
        try:
            socket.send_fds(eng.ctl_child, [b"unsplice"], [source.fileno(), theirs.fileno()])
        finally:
            theirs.close()
        mine.settimeout(ANSWER_TIMEOUT)
        try:
            answer = mine.recv(64).decode()
        except TimeoutError:
            raise oserror("EIO", "the splicing process did not answer") from None
    if answer == "0":
        return
    if answer == "":
        raise oserror("EIO", "the splicing process is gone")
    raise oserror(unspliced_errno if answer == "EPROTO" else answer)


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
        with contextlib.suppress(OSError):
            os.write(reply_fd, answer)
    finally:
        os.close(sock_fd)
        os.close(reply_fd)
