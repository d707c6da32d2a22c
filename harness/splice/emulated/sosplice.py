"""sosetopt(SO_SPLICE) and sosplice(): decoding the option, the checks in kernel order, the link.

OpenBSD's order is semantics 2.1, FreeBSD's 5.1; each check names its errno.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import struct
from typing import TYPE_CHECKING

from .. import kpipe
from ..api import Personality, oserror, unpack_splice
from . import mmsg, probe, sounsplice
from .link import Link

if TYPE_CHECKING:
    from .engine import Engine

MCLBYTES = 2048  # largest option value OpenBSD copies in (sosetopt: m_get + MLEN/MCLBYTES)
STRUCT_SPLICE = struct.calcsize("=i4xqqq")
Idle = tuple[int, int] | None  # (sec, usec) of sp_idle; None for the int form


def sosetopt(eng: Engine, p: Personality, source: socket.socket, value: bytes | int | None,
             optlen: int, fast: bool) -> None:
    """Decode the option value as sosetopt() does (1.3), then sosplice()."""
    if value is None:
        if optlen > MCLBYTES and p.option_bound:
            raise oserror("EINVAL", "option longer than MCLBYTES")
        if p.int_form:
            sosplice(eng, p, source, -1, 0, None, fast)
            return
        raise oserror("EFAULT" if optlen else "EINVAL", "NULL option value")
    if isinstance(value, int):
        if not p.int_form:
            raise oserror("EINVAL", "option shorter than struct splice")
        sosplice(eng, p, source, value, 0, None, fast)
        return
    if len(value) > MCLBYTES and p.option_bound:
        raise oserror("EINVAL", "option longer than MCLBYTES")
    if len(value) < 4:
        raise oserror("EINVAL", "option shorter than an int")
    if len(value) < STRUCT_SPLICE:
        if not p.int_form:
            raise oserror("EINVAL", "option shorter than struct splice")
        sosplice(eng, p, source, struct.unpack("=i", value[:4])[0], 0, None, fast)
        return
    fd, max, sec, usec = unpack_splice(value)
    sosplice(eng, p, source, fd, max, (sec, usec), fast)


def sosplice(eng: Engine, p: Personality, source: socket.socket, fd: int, max: int, tv: Idle,
             fast: bool) -> None:
    if source.fileno() < 0:
        raise oserror("EBADF")
    if p.name == "freebsd":
        so_splice_freebsd(eng, p, source, fd, max, tv, fast)
    else:
        sosplice_openbsd(eng, p, source, fd, max, tv, fast)


def sosplice_openbsd(eng: Engine, p: Personality, source: socket.socket, fd: int, max: int, tv: Idle,
                     fast: bool) -> None:
    """OpenBSD sosplice() in the check order of semantics 2.1; fd < 0 unsplices."""
    if not probe.splicable(source):
        raise oserror("EPROTONOSUPPORT", "source protocol cannot splice")
    if max < 0:
        raise oserror("EINVAL", "negative max")
    sec, usec = tv or (0, 0)
    if sec < 0 or usec < 0 or usec >= 1_000_000:
        raise oserror("EINVAL", "invalid idle timeval")
    with eng.cond:
        if fd < 0:
            link = eng.links.get(eng.canon(source.fileno()))
            if link is None:
                raise oserror("EPROTO", "socket is not spliced")
            sounsplice.sounsplice(eng, link)
            return
        drain = drain_of(fd)
        try:
            if drain.type != source.type or not probe.splicable(drain):
                raise oserror("EPROTONOSUPPORT", "drain protocol differs")
            if probe.listening(source) or probe.listening(drain):
                raise oserror("EOPNOTSUPP", "listening socket")
            if probe.is_tcp(source) and not probe.connected(source):
                raise oserror("ENOTCONN", "source not connected")
            if not probe.connected(drain):
                raise oserror("ENOTCONN", "drain not connected")
            if eng.canon(source.fileno()) in eng.links or eng.canon(fd) in eng.drains:
                raise oserror("EBUSY", "already spliced")
        except OSError:
            drain.detach()
            raise
        link_up(eng, p, source, drain, max, sec + usec / 1e6, fast)


def so_splice_freebsd(eng: Engine, p: Personality, source: socket.socket, fd: int, max: int, tv: Idle,
                      fast: bool) -> None:
    """FreeBSD so_splice() in the check order of semantics 5.1; fd < 0 unsplices."""
    sec, usec = tv or (0, 0)
    with eng.cond:
        if fd < 0:
            if probe.listening(source):
                raise oserror("EINVAL", "listening socket")
            link = eng.links.get(eng.canon(source.fileno()))
            if link is None:
                raise oserror("ENOTCONN", "socket is not spliced")
            sounsplice.sounsplice(eng, link)
            return
        drain = drain_of(fd)
        try:
            if max < 0:
                raise oserror("EINVAL", "negative max")
            for s in (source, drain):
                if not (probe.splicable(s) and probe.is_tcp(s)):
                    raise oserror("EPROTONOSUPPORT", "FreeBSD splices TCP only")
            sfd = eng.canon(source.fileno())
            eng.counters[sfd] = 0  # reset before the state checks, even of a live splice (errata 11)
            if probe.listening(source):
                raise oserror("EINVAL", "listening source")
            if not probe.connected(source):
                raise oserror("ENOTCONN", "source not connected")
            if sfd in eng.links:
                raise oserror("EBUSY", "source already spliced")
            if probe.listening(drain):
                raise oserror("EINVAL", "listening drain")
            if not probe.connected(drain):
                raise oserror("ENOTCONN", "drain not connected")
            if eng.canon(fd) in eng.drains:
                raise oserror("EBUSY", "drain already spliced")
        except OSError:
            drain.detach()
            raise
        link_up(eng, p, source, drain, max, max_idle(sec, usec), fast)


def drain_of(fd: int) -> socket.socket:
    """getsock() of the drain descriptor: EBADF if not open, ENOTSOCK if not a socket."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        raise oserror("EBADF", "drain descriptor not open") from None
    if not stat.S_ISSOCK(mode):
        raise oserror("ENOTSOCK", "drain is not a socket")
    return probe.borrow(fd)


def link_up(eng: Engine, p: Personality, source: socket.socket, drain: socket.socket, max: int,
            idle: float, fast: bool) -> None:
    """The splice in place: so_sp of both sockets set, the first pass inside setsockopt (3.2)."""
    src = probe.borrow(source.fileno())
    tcp = probe.is_tcp(src)
    try:
        oobinline = bool(src.getsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE)) if tcp else False
    except OSError:
        oobinline = False
    pktinfo_saved = None
    if not tcp and src.family == socket.AF_INET and probe.IP_PKTINFO is not None:
        # the header's destination, to refuse looped broadcasts (3.8); put back at the end (errata 8)
        with contextlib.suppress(OSError):
            pktinfo_saved = src.getsockopt(socket.IPPROTO_IP, probe.IP_PKTINFO)
            src.setsockopt(socket.IPPROTO_IP, probe.IP_PKTINFO, 1)
    peekoff_saved = None
    if not tcp:
        with contextlib.suppress(OSError):
            peekoff = src.getsockopt(socket.SOL_SOCKET, mmsg.SO_PEEK_OFF)
            if peekoff >= 0:  # the application peeks at an offset: the pass's peeks must not
                src.setsockopt(socket.SOL_SOCKET, mmsg.SO_PEEK_OFF, -1)
                peekoff_saved = peekoff
    link = Link(source=src, drain=drain, max=max, idle=idle, tcp=tcp, oobinline=oobinline,
                personality=p, pktinfo_saved=pktinfo_saved, peekoff_saved=peekoff_saved)
    if tcp and kpipe.AVAILABLE and fast:
        link.pipe = kpipe.KernelPipe()
    eng.link(link)


def max_idle(sec: int, usec: int) -> float:
    """FreeBSD does not validate sp_idle; a negative one means none."""
    value = sec + usec / 1e6
    return value if value > 0 else 0.0
