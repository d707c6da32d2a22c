"""Wrong splicers of the setsockopt(SO_SPLICE) checks (issue 13): tests/api/matrix.py must catch each.

Each overrides only the public methods of EmulatedSplicer (setopt, splice, unsplice, length)
with a wrapper that plays one plausible kernel bug before or after the emulation answers. They
see the sockets through their descriptors only (fstat, getsockopt, getpeername), never through
the emulation's internals. _Wrapper decodes a request once and runs the mutant's `refuse`
check before the emulation; it also remembers the splices it made, which the emulation keeps
to itself. CATCHERS names the cases that must fail with each (merged into test_mutation.py).
"""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import stat
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from harness.splice.api import (
    SPLICE_LAYOUTS,
    Personality,
    host_abi,
    oserror,
    pack_splice,
    split_idle,
    unpack_splice,
)
from harness.splice.emulated import EmulatedSplicer

MCLBYTES = 2048
ABI = host_abi()
STRUCT_SIZE = struct.calcsize(SPLICE_LAYOUTS[ABI])
Ident = tuple[int, int]


@dataclass(frozen=True)
class Request:
    """One setsockopt(SO_SPLICE) as sosetopt reads it on OpenBSD (semantics 1.3)."""

    form: str  # "null", "short", "int" or "struct"
    fd: int = -1
    max: int = 0
    tv: tuple[int, int] = (0, 0)

    @property
    def bad_idle(self) -> bool:
        sec, usec = self.tv
        return self.form == "struct" and (sec < 0 or usec < 0 or usec >= 1_000_000)

    @property
    def bad_args(self) -> bool:
        return (self.form == "struct" and self.max < 0) or self.bad_idle

    @property
    def splices(self) -> bool:
        """A request for a drain, with arguments that pass checks 5, 8 and 9."""
        return self.form in ("int", "struct") and self.fd >= 0 and not self.bad_args


def decode(value: bytes | int | None) -> Request:
    if value is None:
        return Request("null")
    if isinstance(value, int):
        return Request("int", value)
    if len(value) < 4:
        return Request("short")
    if len(value) < STRUCT_SIZE:
        return Request("int", struct.unpack("=i", value[:4])[0])
    fd, max, sec, usec = unpack_splice(value, ABI)
    return Request("struct", fd, max, (sec, usec))


def ident(fd: int) -> Ident | None:
    """The open file behind a descriptor (a splice belongs to the socket, errata 7), None if not open."""
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def is_socket(fd: int) -> bool:
    try:
        return stat.S_ISSOCK(os.fstat(fd).st_mode)
    except OSError:
        return False


@contextlib.contextmanager
def borrowed(fd: int) -> Iterator[socket.socket]:
    s = socket.socket(fileno=fd)
    try:
        yield s
    finally:
        s.detach()


def inet(fd: int) -> tuple[int, int] | None:
    """(family, type) of a TCP or UDP socket, else None."""
    if not is_socket(fd):
        return None
    with borrowed(fd) as s:
        if s.family in (socket.AF_INET, socket.AF_INET6) and s.type in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            return s.family, s.type
    return None


def listening(fd: int) -> bool:
    with borrowed(fd) as s:
        try:
            return bool(s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
        except OSError:
            return False


def has_peer(fd: int) -> bool:
    with borrowed(fd) as s:
        try:
            s.getpeername()
            return True
        except OSError:
            return False


class _Wrapper(EmulatedSplicer):
    """The emulation, with a wrong check (`refuse`) run before each request and a hook on refusals."""

    def __init__(self, personality: Personality) -> None:
        super().__init__(personality)
        self.links: dict[Ident, Ident] = {}  # source -> drain, of the splices made through here
        self.zeroed: dict[Ident, int] = {}  # source -> counter value taken as 0

    def refuse(self, source: socket.socket, req: Request) -> None:
        """Raise OSError to refuse the request before the emulation sees it."""

    def refused(self, source: socket.socket, req: Request) -> None:
        """The emulation refused the request."""

    def has_drain(self, sock: socket.socket) -> bool:
        """A splice made through here has this source (the emulation's own view stays its own)."""
        return ident(sock.fileno()) in self.links

    def target(self, fd: int) -> bool:
        return ident(fd) in self.links.values()

    def _request(self, source: socket.socket, req: Request, call: Callable[[], None]) -> None:
        self.refuse(source, req)
        try:
            call()
        except OSError:
            self.refused(source, req)
            raise
        me, drain = ident(source.fileno()), ident(req.fd)
        if me is None:
            return
        if req.fd >= 0 and drain is not None:
            self.links[me] = drain
            self.zeroed.pop(me, None)
        elif req.fd < 0:
            self.links.pop(me, None)

    def setopt(self, source: socket.socket, value: bytes | int | None, optlen: int = 0) -> None:
        parent = super().setopt
        self._request(source, decode(value), lambda: parent(source, value, optlen))

    def splice(self, source: socket.socket, drain: socket.socket | int, max: int = 0,
               idle: float = 0.0) -> None:
        fd = drain if isinstance(drain, int) else drain.fileno()
        parent = super().splice
        req = Request("struct", fd, max, split_idle(idle) if idle else (0, 0))
        self._request(source, req, lambda: parent(source, drain, max, idle))

    def unsplice(self, source: socket.socket) -> None:
        parent = super().unsplice
        self._request(source, Request("int" if self.personality.int_form else "struct"), lambda: parent(source))

    def length(self, source: socket.socket) -> int:
        return super().length(source) - self.zeroed.get(ident(source.fileno()) or (0, 0), 0)


# ---- the order of the checks (semantics 2.1)


class BusyBeforeState(_Wrapper):
    """Checks EBUSY before the listening and connection checks (where rev 1.250 had it)."""

    def refuse(self, source: socket.socket, req: Request) -> None:
        kind = inet(source.fileno())
        if req.splices and kind and inet(req.fd) == kind and (self.has_drain(source) or self.target(req.fd)):
            raise oserror("EBUSY", "already spliced")


class StateBeforeDrainLookup(_Wrapper):
    """Checks the source's listening and connection before the drain descriptor (the rev 1.250 order)."""

    def refuse(self, source: socket.socket, req: Request) -> None:
        kind = inet(source.fileno())
        if not (req.splices and kind):
            return
        if listening(source.fileno()):
            raise oserror("EOPNOTSUPP", "listening source")
        if kind[1] == socket.SOCK_STREAM and not has_peer(source.fileno()):
            raise oserror("ENOTCONN", "source not connected")


class ListeningBeforeProtocol(_Wrapper):
    """Checks for a listening socket before the drain's protocol: a listening TCP source into UDP is EOPNOTSUPP."""

    def refuse(self, source: socket.socket, req: Request) -> None:
        if req.splices and inet(source.fileno()) and is_socket(req.fd) and (
                listening(source.fileno()) or listening(req.fd)):
            raise oserror("EOPNOTSUPP", "listening socket")


class ArgsBeforeSourceProtocol(_Wrapper):
    """Validates max and idle before the source's protocol: a unix source with a negative max is EINVAL."""

    def refuse(self, source: socket.socket, req: Request) -> None:
        if req.bad_args:
            raise oserror("EINVAL", "bad max or idle")


# ---- the argument checks (semantics 1.3, 2.1 checks 3, 5, 8, 9)


class UsecMillionAccepted(_Wrapper):
    """Accepts tv_usec == 1000000 (rev 1.231 refused only negative values) and splices with 1 s more."""

    def setopt(self, source: socket.socket, value: bytes | int | None, optlen: int = 0) -> None:
        req = decode(value)
        if isinstance(value, bytes) and req.form == "struct" and req.tv[1] == 1_000_000 and req.tv[0] >= 0:
            value = pack_splice(req.fd, req.max, abi=ABI, tv=(req.tv[0] + 1, 0)) + value[STRUCT_SIZE:]
        super().setopt(source, value, optlen)


class UnspliceSkipsArgs(_Wrapper):
    """A struct unsplice (negative descriptor) skips the max and idle checks, as before 2020."""

    def setopt(self, source: socket.socket, value: bytes | int | None, optlen: int = 0) -> None:
        req = decode(value)
        if isinstance(value, bytes) and req.form == "struct" and req.fd < 0:
            value = pack_splice(req.fd, 0, abi=ABI)
        super().setopt(source, value, optlen)


class ShortValueReadsMax(_Wrapper):
    """Reads the max of a 4.9-era 16-byte {fd, max} value, which is the int form: a negative one is EINVAL."""

    def setopt(self, source: socket.socket, value: bytes | int | None, optlen: int = 0) -> None:
        if isinstance(value, bytes) and 16 <= len(value) < STRUCT_SIZE:
            _fd, max, _sec, _usec = unpack_splice(value.ljust(STRUCT_SIZE, b"\0"), ABI)
            if max < 0:
                raise oserror("EINVAL", "negative max")
        super().setopt(source, value, optlen)


class NullBoundIgnored(_Wrapper):
    """Checks the MCLBYTES bound only for a value: a NULL option of 4096 bytes unsplices."""

    def setopt(self, source: socket.socket, value: bytes | int | None, optlen: int = 0) -> None:
        super().setopt(source, value, 0 if value is None else optlen)


# ---- the drain descriptor (semantics 2.1 checks 12, 13)


class ClosedFdEinval(_Wrapper):
    """Answers EINVAL instead of EBADF for a drain descriptor that is not open."""

    def refuse(self, source: socket.socket, req: Request) -> None:
        if req.splices and inet(source.fileno()) and ident(req.fd) is None:
            raise oserror("EINVAL", "bad descriptor")


class DescriptorRangeEinval(_Wrapper):
    """Answers EINVAL for a drain descriptor beyond the descriptor table (a range check before the lookup)."""

    def refuse(self, source: socket.socket, req: Request) -> None:
        if req.splices and inet(source.fileno()) and req.fd >= resource.getrlimit(resource.RLIMIT_NOFILE)[0]:
            raise oserror("EINVAL", "descriptor out of range")


class NotsockAsEbadf(_Wrapper):
    """Answers EBADF for an open descriptor that is no socket (getsock's two errors merged)."""

    def refuse(self, source: socket.socket, req: Request) -> None:
        if req.splices and inet(source.fileno()) and ident(req.fd) is not None and not is_socket(req.fd):
            raise oserror("EBADF", "not a socket")


class Inet6Refused(_Wrapper):
    """Compares the address family too: TCPv4 into TCPv6 is EPROTONOSUPPORT."""

    def refuse(self, source: socket.socket, req: Request) -> None:
        mine, theirs = inet(source.fileno()), inet(req.fd) if req.splices else None
        if mine and theirs and mine[1] == theirs[1] and mine[0] != theirs[0]:
            raise oserror("EPROTONOSUPPORT", "address families differ")


# ---- the states (semantics 2.1 checks 17, 18)


class ConnectingDrainRefused(_Wrapper):
    """Counts only an established drain as connected: a drain still connecting is ENOTCONN."""

    def refuse(self, source: socket.socket, req: Request) -> None:
        if (req.splices and inet(source.fileno()) and has_peer(source.fileno()) and not self.has_drain(source)
                and inet(req.fd) == inet(source.fileno()) and not listening(req.fd) and not has_peer(req.fd)):
            raise oserror("ENOTCONN", "drain not connected")


class AnySpliceBusy(_Wrapper):
    """EBUSY when either socket is in any splice, as source or drain: relays and chains are refused."""

    def refuse(self, source: socket.socket, req: Request) -> None:
        if req.splices and (self.target(source.fileno()) or ident(req.fd) in self.links):
            raise oserror("EBUSY", "already in a splice")


# ---- unsplice (semantics 2.1 check 10)


class NullOnlyUnsplices(_Wrapper):
    """Unsplicing a socket that has no drain succeeds in the NULL form (EPROTO only for the others)."""

    def setopt(self, source: socket.socket, value: bytes | int | None, optlen: int = 0) -> None:
        if (value is None and optlen <= MCLBYTES and self.personality.int_form and not self.has_drain(source)
                and inet(source.fileno())):
            return
        super().setopt(source, value, optlen)


class RefusedUnspliceDissolves(_Wrapper):
    """A struct unsplice with a bad max or idle dissolves the splice before it answers EINVAL."""

    def setopt(self, source: socket.socket, value: bytes | int | None, optlen: int = 0) -> None:
        req = decode(value)
        if req.form == "struct" and req.fd < 0 and req.bad_args and self.has_drain(source):
            with contextlib.suppress(OSError):
                self.unsplice(source)
        super().setopt(source, value, optlen)


# ---- the counter (semantics 1.4; 5.1 counter reset quirk)


class CounterResetOnRefusal(_Wrapper):
    """Zeroes the counter when a splice is refused, whatever the reason."""

    def refused(self, source: socket.socket, req: Request) -> None:
        me = ident(source.fileno())
        if req.fd >= 0 and me is not None:
            self.zeroed[me] = EmulatedSplicer.length(self, source)


class FreebsdEarlyResetCounter(CounterResetOnRefusal):
    """FreeBSD: zeroes the counter before the drain lookup and max check, so every refused splice zeroes it."""


class FreebsdIdleChecked(_Wrapper):
    """FreeBSD: validates the idle time like OpenBSD (EINVAL for tv_usec = 1000000)."""

    def refuse(self, source: socket.socket, req: Request) -> None:
        if req.bad_idle:
            raise oserror("EINVAL", "invalid idle timeval")


class FreebsdUnspliceChecksMax(_Wrapper):
    """FreeBSD: the unsplice path validates max (EINVAL for a negative one)."""

    def refuse(self, source: socket.socket, req: Request) -> None:
        if req.form == "struct" and req.fd < 0 and req.max < 0:
            raise oserror("EINVAL", "negative max")


def _cases(*ids: str) -> list[str]:
    return [f"tests/api/test_api.py::test_api[{id}]" for id in ids]


FREEBSD = ["--splice-personality=freebsd"]
HERE = "tests.selftest.mutants_api"
CATCHERS: dict[str, list[str]] = {f"{HERE}:{name}": selection for name, selection in {
    "BusyBeforeState": _cases("order-struct-ENOTCONN-spliced-source-unconnected-drain",
                              "order-struct-EOPNOTSUPP-spliced-source-listening-drain",
                              "counter-live-EOPNOTSUPP-listening-openbsd"),
    "StateBeforeDrainLookup": _cases("order-struct-EBADF-listening-source", "order-int-EBADF-unconnected-source"),
    "ListeningBeforeProtocol": _cases("order-struct-EPROTONOSUPPORT-listening-udp"),
    "ArgsBeforeSourceProtocol": _cases("order-negmax-EPROTONOSUPPORT-unix-source", "unsplice-negmax-unix"),
    "UsecMillionAccepted": _cases("order-million-ok-tcp", "unsplice-million-never"),
    "UnspliceSkipsArgs": _cases("unsplice-negmax-never", "unsplice-negmax-spliced-openbsd"),
    "ShortValueReadsMax": _cases("order-old16-ok-tcp", "unsplice-old16-negmax-spliced-openbsd"),
    "NullBoundIgnored": _cases("unsplice-null4096-never", "unsplice-null4096-spliced-openbsd"),
    "ClosedFdEinval": _cases("order-struct-EBADF-closed", "counter-live-EBADF-closed"),
    "DescriptorRangeEinval": _cases("order-struct-EBADF-intmax"),
    "NotsockAsEbadf": _cases("order-struct-ENOTSOCK-pipe", "order-struct-ENOTSOCK-file"),
    "Inet6Refused": _cases("order-struct-ok-tcp4-tcp6"),
    "ConnectingDrainRefused": _cases("order-struct-ok-connecting-drain"),
    "AnySpliceBusy": _cases("order-int-ok-reverse", "order-struct-ok-chain"),
    "NullOnlyUnsplices": _cases("unsplice-null-never", "unsplice-null32-ended"),
    "RefusedUnspliceDissolves": _cases("unsplice-negmax-spliced-openbsd"),
    "CounterResetOnRefusal": _cases("counter-live-EBADF-closed", "counter-ended-ENOTSOCK-pipe"),
    "FreebsdEarlyResetCounter": [*FREEBSD, *_cases("counter-live-EBADF-closed", "counter-live-negmax-EBUSY")],
    "FreebsdIdleChecked": [*FREEBSD, *_cases("order-million-ok-tcp")],
    "FreebsdUnspliceChecksMax": [*FREEBSD, *_cases("unsplice-negmax-never", "unsplice-negmax-spliced-freebsd")],
}.items()}
