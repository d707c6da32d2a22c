"""A user's splicer that behaves exactly as the emulation: the suite must pass with it.

The harness must not depend on the backend being called "emulated" or being an
EmulatedSplicer: it sees only the Splicer protocol. WrappedEmulation holds an
EmulatedSplicer and forwards each call of the protocol to it, unchanged, as a
user's own class would. `tox -e wrapped` runs the TCP and UDP cases with it;
test_wrapped.py runs a sample.
"""

from __future__ import annotations

import socket

from harness.splice.api import Personality, Splicer
from harness.splice.emulated import EmulatedSplicer


class WrappedEmulation:
    """Splicer by composition, not inheritance: only the protocol's methods reach the emulation."""

    def __init__(self, personality: Personality) -> None:
        self._inner: Splicer = EmulatedSplicer(personality)
        self.personality = personality

    def splice(self, source: socket.socket, drain: socket.socket | int, max: int = 0,
               idle: float = 0.0) -> None:
        self._inner.splice(source, drain, max, idle)

    def unsplice(self, source: socket.socket) -> None:
        self._inner.unsplice(source)

    def setopt(self, source: socket.socket, value: bytes | int | None, optlen: int = 0) -> None:
        self._inner.setopt(source, value, optlen)

    def length(self, source: socket.socket) -> int:
        return self._inner.length(source)

    def error(self, sock: socket.socket) -> int:
        return self._inner.error(sock)

    def wait_readable(self, sock: socket.socket, timeout: float | None, exceptional: bool = False) -> bool:
        return self._inner.wait_readable(sock, timeout, exceptional)

    def recv(self, sock: socket.socket, size: int, flags: int = 0) -> bytes:
        return self._inner.recv(sock, size, flags)

    def send(self, sock: socket.socket, data: bytes, flags: int = 0) -> int:
        return self._inner.send(sock, data, flags)

    def shutdown(self, sock: socket.socket, how: int) -> None:
        self._inner.shutdown(sock, how)

    def close(self, sock: socket.socket) -> None:
        self._inner.close(sock)
