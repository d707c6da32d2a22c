"""The kernel's own SO_SPLICE (OpenBSD, FreeBSD 15), through setsockopt.

Stdlib only: this module travels to the remote host with the agent.
"""

from __future__ import annotations

import os
import select
import socket
import struct

from .api import (
    FREEBSD,
    OPENBSD,
    SO_SPLICE,
    SOL_SOCKET_BSD,
    Personality,
    host_abi,
    pack_splice,
)


class BackendUnavailable(RuntimeError):
    """The selected splice backend cannot work on this host."""


def missing() -> str:
    """What this kernel lacks for SO_SPLICE, in a few words naming it ("" when it has it)."""
    uname = os.uname()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.getsockopt(SOL_SOCKET_BSD, SO_SPLICE, 8)
    except OSError as e:
        return f"{uname.sysname} {uname.release} has no SO_SPLICE ({os.strerror(e.errno or 0)})"
    finally:
        s.close()
    return ""


def probe() -> None:
    """Raise BackendUnavailable unless this kernel answers SO_SPLICE."""
    why = missing()
    if why:
        raise BackendUnavailable(
            f"native splice backend: {why}; use --splice-backend emulated, or run the "
            f"suite against an OpenBSD/FreeBSD host with --splice-target ssh://HOST")


def host_personality() -> Personality:
    return FREEBSD if os.uname().sysname == "FreeBSD" else OPENBSD


class NativeSplicer:
    """setsockopt(SOL_SOCKET, SO_SPLICE) and plain socket calls."""

    def __init__(self, personality: Personality | None = None) -> None:
        probe()
        self.personality = personality or host_personality()
        self.abi = host_abi()

    def splice(self, source: socket.socket, drain: socket.socket | int, max: int = 0,
               idle: float = 0.0) -> None:
        fd = drain if isinstance(drain, int) else drain.fileno()
        source.setsockopt(SOL_SOCKET_BSD, SO_SPLICE, pack_splice(fd, max, idle, self.abi))

    def unsplice(self, source: socket.socket) -> None:
        source.setsockopt(SOL_SOCKET_BSD, SO_SPLICE, pack_splice(-1, 0, 0.0, self.abi))

    def setopt(self, source: socket.socket, value: bytes | int | None, optlen: int = 0) -> None:
        if value is None:
            source.setsockopt(SOL_SOCKET_BSD, SO_SPLICE, None, optlen)
        else:
            source.setsockopt(SOL_SOCKET_BSD, SO_SPLICE, value)

    def length(self, source: socket.socket) -> int:
        value: int = struct.unpack("=q", source.getsockopt(SOL_SOCKET_BSD, SO_SPLICE, 8))[0]
        return value

    def error(self, sock: socket.socket) -> int:
        return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)

    def wait_readable(self, sock: socket.socket, timeout: float | None,
                      exceptional: bool = False) -> bool:
        r, _, x = select.select([sock], [], [sock] if exceptional else [], timeout)
        return bool(r or x)

    def recv(self, sock: socket.socket, size: int, flags: int = 0) -> bytes:
        return sock.recv(size, flags)

    def send(self, sock: socket.socket, data: bytes, flags: int = 0) -> int:
        return sock.send(data, flags)

    def shutdown(self, sock: socket.socket, how: int) -> None:
        sock.shutdown(how)

    def close(self, sock: socket.socket) -> None:
        sock.close()
