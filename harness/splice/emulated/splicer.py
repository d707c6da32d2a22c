"""EmulatedSplicer: the Splicer interface (harness.splice.api) over the engine of this process."""

from __future__ import annotations

import os
import socket

from ..api import OPENBSD, Personality, split_idle
from . import calls, fork, sosplice
from .engine import Engine


class EmulatedSplicer:
    """SO_SPLICE semantics in user space, for any kernel (semantics appendix A)."""

    fast = True  # TCP moves by splice(2) through a pipe where the kernel has it

    def __init__(self, personality: Personality = OPENBSD) -> None:
        self.personality = personality
        self.engine = Engine.get()

    # ---- the option

    def setopt(self, source: socket.socket, value: bytes | int | None, optlen: int = 0) -> None:
        sosplice.sosetopt(self.engine, self.personality, source, value, optlen, self.fast)

    def splice(self, source: socket.socket, drain: socket.socket | int, max: int = 0,
               idle: float = 0.0) -> None:
        fd = drain if isinstance(drain, int) else drain.fileno()
        sosplice.sosplice(self.engine, self.personality, source, fd, max,
                          split_idle(idle) if idle else (0, 0), self.fast)

    def unsplice(self, source: socket.socket) -> None:
        if self.engine.pid != os.getpid():
            fork.request_unsplice(self.engine, source, self.personality.unsplice_unspliced)
            return
        sosplice.sosplice(self.engine, self.personality, source, -1, 0, None, self.fast)

    # ---- reading the state (getsockopt SO_SPLICE, SO_ERROR)

    def length(self, source: socket.socket) -> int:
        return calls.length(self.engine, self.personality, source)

    def error(self, sock: socket.socket) -> int:
        return calls.error(self.engine, sock)

    def spliced(self, sock: socket.socket) -> bool:
        return calls.spliced(self.engine, sock)

    # ---- the application's calls on spliced sockets

    def wait_readable(self, sock: socket.socket, timeout: float | None,
                      exceptional: bool = False) -> bool:
        return calls.poll_readable(self.engine, sock, timeout, exceptional)

    def recv(self, sock: socket.socket, size: int, flags: int = 0) -> bytes:
        return calls.soreceive(self.engine, self.personality, sock, size, flags)

    def send(self, sock: socket.socket, data: bytes, flags: int = 0) -> int:
        return calls.sosend(self.engine, sock, data, flags)

    def shutdown(self, sock: socket.socket, how: int) -> None:
        calls.soshutdown(self.engine, sock, how)

    def close(self, sock: socket.socket) -> None:
        calls.soclose(self.engine, sock)


class ByteCopySplicer(EmulatedSplicer):
    """The emulation without the splice(2) fast path: every byte peeked, sent and consumed.

    --splice-backend harness.splice.emulated:ByteCopySplicer runs the cases on this path.
    """

    fast = False
