"""Loop detection: the mbuf hop counter (m_pkthdr.ph_loopcnt) and looped broadcasts (3.8).

Linux carries no hop count in a packet, so the engine keeps one per receiving
socket for data sent over its own splices (appendix A): data sent on a drain
whose peer is the source of another of its splices arrives one hop further.
"""

from __future__ import annotations

import collections
import fcntl
import socket
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import probe
from .link import Link
from .probe import Addr

if TYPE_CHECKING:
    from .engine import Engine

M_MAXLOOP = 128  # hops before a moved packet is refused with ELOOP
Key = tuple[Addr, Addr | None]  # (receiving socket's address, sender's address or None)


@dataclass
class Hops:
    """Hop counts of data in flight towards one receiving socket, oldest first."""

    ranges: collections.deque[list[int]] = field(default_factory=collections.deque)
    # errata 9: ph_loopcnt++ counts every pass that inspects the head packet; a pass that moves
    # only part of the head range leaves the rest one count higher (one range: one packet)
    extra: int = 0

    def first(self) -> int:
        return self.ranges[0][1] + self.extra if self.ranges else 0

    def take(self, n: int, datagram: bool) -> list[tuple[int, int]]:
        """Remove n bytes (or one datagram); return their (length, hops) pieces."""
        if datagram:
            if self.ranges:
                _size, hops = self.ranges.popleft()
                return [(n, hops)]
            return [(n, 0)]
        out: list[tuple[int, int]] = []
        while n > 0 and self.ranges:
            head = self.ranges[0]
            k = min(n, head[0])
            out.append((k, head[1] + self.extra))
            head[0] -= k
            n -= k
            if head[0] == 0:
                self.ranges.popleft()
                self.extra = 0
            else:
                self.extra += 1
        if n > 0:
            out.append((n, 0))
        return out


def key_in(s: socket.socket, sender: Addr | None) -> Key | None:
    try:
        local = probe.addr(s.getsockname())
    except OSError:
        return None
    if local is None:
        return None
    if sender is None:
        try:
            sender = probe.addr(s.getpeername())
        except OSError:
            sender = None
    return (local, sender)


def source_key(link: Link) -> Key | None:
    """The hop key of a link's source (its own sender unknown); kept for TCP."""
    if link.src_key is not None:
        return link.src_key
    key = key_in(link.source, None)
    if link.tcp and key is not None and key[1] is not None:
        link.src_key = key
    return key


def out_key(drain: socket.socket, link: Link | None) -> tuple[Addr, Addr] | None:
    """(drain's peer, drain's local): where data sent on drain arrives; kept for a TCP link."""
    if link is not None and link.out_key is not None:
        return link.out_key
    try:
        peer = probe.addr(drain.getpeername())
        local = probe.addr(drain.getsockname())
    except OSError:
        return None
    if peer is None or local is None:
        return None
    if link is not None and link.tcp:
        link.out_key = (peer, local)
    return (peer, local)


def ours(eng: Engine, key: tuple[Addr, Addr] | None) -> bool:
    """Data arriving at key is read by the source of one of this engine's splices."""
    return key is not None and any(source_key(other) in (key, (key[0], None))
                                   for other in eng.links.values())


def note_out(eng: Engine, drain: socket.socket, pieces: list[tuple[int, int]], link: Link | None = None) -> None:
    """Data sent on drain arrives at drain's peer one hop further, if that is ours."""
    key = out_key(drain, link)
    if key is None or not ours(eng, key):
        return
    eng.hops.setdefault(key, Hops()).ranges.extend([n, h + 1] for n, h in pieces)


def hops_for(eng: Engine, key: Key | None) -> Hops:
    if key is None:
        return Hops()
    return eng.hops.setdefault(key, Hops())


_SIOCGIFBRDADDR = 0x8919  # Linux


def _broadcast_of(ifindex: int) -> bytes | None:
    """The IPv4 broadcast address of an interface (Linux), if it has one."""
    try:
        name = socket.if_indextoname(ifindex)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            req = fcntl.ioctl(s.fileno(), _SIOCGIFBRDADDR, struct.pack("16s16x", name.encode()))
    except OSError:
        return None
    return req[20:24]


def _is_local(host: str) -> bool:
    """The address belongs to this host: a socket can be bound to it."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((host, 0))
    except OSError:
        return False
    return True


class Casts:
    """Looped broadcasts (3.8: M_BCAST|M_MCAST with M_LOOP), judged from IP_PKTINFO.

    IP_PKTINFO (Linux: int ifindex, in_addr spec_dst, in_addr addr) gives the header's
    destination; a sender address of this host means it came back over loopback. One
    per pass: it keeps the interfaces' broadcast addresses and the senders it judged.
    """

    def __init__(self) -> None:
        self.broadcasts: dict[int, bytes | None] = {}
        self.local_hosts: dict[str, bool] = {}

    def looped(self, ifindex: int, dst: bytes, sender: Addr | None) -> bool:
        if not (dst == b"\xff\xff\xff\xff" or 224 <= dst[0] <= 239):
            if ifindex not in self.broadcasts:
                self.broadcasts[ifindex] = _broadcast_of(ifindex)
            if dst != self.broadcasts[ifindex]:
                return False
        return sender is not None and self.is_local(sender[0])

    def is_local(self, host: str) -> bool:
        if host not in self.local_hosts:
            self.local_hosts[host] = _is_local(host)
        return self.local_hosts[host]


def owned_by(sock: socket.socket, key: Key) -> bool:
    try:
        local = probe.addr(sock.getsockname())
    except OSError:
        return False
    try:
        peer = probe.addr(sock.getpeername())
    except OSError:
        peer = None
    return key in ((local, peer), (local, None))
