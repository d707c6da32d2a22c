"""The Splicer interface, the option encoding, and what each personality answers.

Stdlib only: this module travels to the remote host with the agent.
"""

from __future__ import annotations

import errno
import socket
import struct
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

SOL_SOCKET_BSD = 0xFFFF
SO_SPLICE = 0x1023

# struct splice { int sp_fd; off_t sp_max; struct timeval sp_idle; } per ABI (semantics 1.2).
SPLICE_LAYOUTS: dict[str, str] = {
    "lp64": "=i4xqqq",  # OpenBSD and FreeBSD amd64, arm64, riscv64: 32 bytes
    "openbsd-i386": "=iqqi",  # 64-bit values aligned to 4: 24 bytes
    "openbsd-ilp32": "=i4xqqi4x",  # armv7, powerpc: 64-bit values aligned to 8: 32 bytes
    "freebsd-i386": "=iqii",  # 32-bit time_t: 20 bytes
}


def host_abi(system: str | None = None, machine: str | None = None) -> str:
    """The layout name for a host, from os.uname() fields."""
    import os

    uname = os.uname()
    system = (system or uname.sysname).lower()
    machine = (machine or uname.machine).lower()
    if struct.calcsize("P") == 8:
        return "lp64"
    if machine in ("i386", "i486", "i586", "i686"):
        return "freebsd-i386" if system == "freebsd" else "openbsd-i386"
    return "openbsd-ilp32"


def split_idle(idle: float) -> tuple[int, int]:
    """Seconds as (tv_sec, tv_usec), the way BSD::Socket::Splice splits a fractional idle."""
    sec = int(idle // 1)
    usec = int((idle - sec) * 1_000_000)
    return sec, usec


def pack_splice(fd: int, max: int = 0, idle: float = 0.0, abi: str = "lp64",
                tv: tuple[int, int] | None = None) -> bytes:
    """Encode struct splice; `tv` overrides `idle` to pass raw (possibly invalid) timevals."""
    sec, usec = tv if tv is not None else split_idle(idle)
    return struct.pack(SPLICE_LAYOUTS[abi], fd, max, sec, usec)


def unpack_splice(data: bytes, abi: str = "lp64") -> tuple[int, int, int, int]:
    fd, max, sec, usec = struct.unpack(SPLICE_LAYOUTS[abi], data[: struct.calcsize(SPLICE_LAYOUTS[abi])])
    return fd, max, sec, usec


@dataclass(frozen=True)
class Personality:
    """What a kernel family answers where the families differ (semantics 2.1, 5.1)."""

    name: str
    udp: bool  # UDP sockets may be spliced
    int_form: bool  # a 4-byte int option value is accepted
    efbig: bool  # max reached is reported as EFBIG
    etimedout: bool  # idle timeout is reported as ETIMEDOUT
    eloop: bool  # loop detection
    idle_restarts: bool  # the idle timer restarts on activity (else: one-shot from splice time)
    unsplice_unspliced: str  # errno name for unsplicing a socket without a drain
    listening: str  # errno name for a listening source or drain
    max_checked_before_fd: bool  # negative max is EINVAL even with a bad drain fd
    spliced_read_blocks: bool  # a read on a spliced source waits for the dissolve
    option_bound: bool = True  # an option value over MCLBYTES is EINVAL (FreeBSD: no bound)
    drain_shut_epipe: bool = True  # a drain that cannot send ends the splice with EPIPE (FreeBSD: no error)
    urgent_forwarded: bool = True  # an inline urgent byte leaves the drain as urgent (FreeBSD: as data)
    length_listening: str = ""  # errno name of getsockopt(SO_SPLICE) on a listening socket, if any
    sndlowat: bool = True  # a partly full drain takes data only when SO_SNDLOWAT fits (FreeBSD: any space)
    eof_ends_full: bool = False  # EOF on the source ends the splice while a full drain holds data back


OPENBSD = Personality(
    name="openbsd", udp=True, int_form=True, efbig=True, etimedout=True, eloop=True,
    idle_restarts=True, unsplice_unspliced="EPROTO", listening="EOPNOTSUPP",
    max_checked_before_fd=True, spliced_read_blocks=True,
)
FREEBSD = Personality(
    name="freebsd", udp=False, int_form=False, efbig=False, etimedout=False, eloop=False,
    idle_restarts=False, unsplice_unspliced="ENOTCONN", listening="EINVAL",
    max_checked_before_fd=False, spliced_read_blocks=False,
    option_bound=False, drain_shut_epipe=False, urgent_forwarded=False, length_listening="ENOTCONN",
    sndlowat=False, eof_ends_full=True,
)
PERSONALITIES: dict[str, Personality] = {p.name: p for p in (OPENBSD, FREEBSD)}


def personality(name: str) -> Personality:
    try:
        return PERSONALITIES[name]
    except KeyError:
        valid = ", ".join(sorted(PERSONALITIES))
        raise ValueError(f"unknown splice personality {name!r}; valid: {valid}") from None


def oserror(name: str, what: str = "") -> OSError:
    """An OSError for an errno given by symbol, with the host's number and text."""
    code = getattr(errno, name)
    import os

    return OSError(code, f"{os.strerror(code)}{': ' + what if what else ''}")


# Where a host gives one number two names, the name the BSD man pages use.
_PREFERRED = ("EOPNOTSUPP", "EAGAIN", "EDEADLK")


def errno_name(code: int | None) -> str:
    """Symbolic name of an errno number on this host; '0' for no error."""
    if not code:
        return "0"
    for name in _PREFERRED:
        if getattr(errno, name, None) == code:
            return name
    return errno.errorcode.get(code, str(code))


@runtime_checkable
class Splicer(Protocol):
    """Splice one socket into another, the way setsockopt(SO_SPLICE) does.

    Errors are raised as OSError with the errno of the personality. Every call
    that the relay makes on a spliced socket goes through here, so that an
    emulation can give the kernel's view (a spliced source is not readable).
    """

    personality: Personality

    def splice(self, source: socket.socket, drain: socket.socket | int, max: int = 0,
               idle: float = 0.0) -> None: ...

    def unsplice(self, source: socket.socket) -> None: ...

    def setopt(self, source: socket.socket, value: bytes | int | None, optlen: int = 0) -> None:
        """The raw option: bytes as given, an int (int form), or None (NULL optval)."""
        ...

    def length(self, source: socket.socket) -> int: ...

    def error(self, sock: socket.socket) -> int:
        """Get and clear the pending error, like getsockopt(SO_ERROR)."""
        ...

    def wait_readable(self, sock: socket.socket, timeout: float | None,
                      exceptional: bool = False) -> bool:
        """select() for read (and exceptional) readiness, as the kernel reports it."""
        ...

    def recv(self, sock: socket.socket, size: int, flags: int = 0) -> bytes: ...

    def send(self, sock: socket.socket, data: bytes, flags: int = 0) -> int: ...

    def shutdown(self, sock: socket.socket, how: int) -> None: ...

    def close(self, sock: socket.socket) -> None: ...
