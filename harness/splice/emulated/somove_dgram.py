"""somove() for SOCK_DGRAM: one datagram at a time, whole or not at all (section 4)."""

from __future__ import annotations

import errno
import socket
from typing import TYPE_CHECKING

from . import loop, probe, somove
from .link import Link

if TYPE_CHECKING:
    from .engine import Engine

MAX_DATAGRAM = 1 << 16


def move(eng: Engine, link: Link) -> None:
    src, dst = link.source, link.drain
    link.waiting = False
    max_reached = False
    err = 0
    # what stays the same for every datagram of the pass, looked up once
    try:
        local = probe.addr(src.getsockname())
    except OSError:
        local = None
    sndbuf = probe.sndbuf(dst)
    broadcasts: dict[int, bytes | None] = {}
    out = loop.out_key(dst, None)  # where the datagrams arrive, and whether that is ours
    ours = loop.ours(eng, out)
    while True:
        check = somove.checks(eng, link)
        if check is not None:
            err = check
            break
        try:
            data, anc, _flags, sender = src.recvmsg(MAX_DATAGRAM, probe.PKTINFO_SPACE, probe.PEEK_NOWAIT)
        except BlockingIOError:
            break
        except OSError as e:
            err = e.errno or errno.EIO
            break
        size = len(data)
        if link.max and size >= link.max - eng.counters[link.sfd]:
            max_reached = True  # this datagram reaches max, or does not fit (4: max)
        hops = loop.hops_for(eng, None if local is None else (local, probe.addr(sender)))
        if link.personality.eloop and (hops.first() >= loop.M_MAXLOOP
                                       or loop.looped_broadcast(anc, sender, broadcasts)):
            err = errno.ELOOP
            break
        if size > sndbuf:
            err = errno.EMSGSIZE  # sosend() of an atomic datagram larger than sb_hiwat
            break
        if link.max and eng.counters[link.sfd] + size > link.max:
            break
        try:
            dst.send(data, socket.MSG_DONTWAIT)
        except BlockingIOError:
            link.waiting, max_reached = True, False
            break
        except OSError as e:
            src.recv(1, socket.MSG_DONTWAIT)  # the kernel loses it too
            err = e.errno or errno.EIO
            break
        src.recv(1, socket.MSG_DONTWAIT)  # consumes the whole datagram
        eng.counters[link.sfd] += size
        pieces = hops.take(size, datagram=True)
        if ours and out is not None:  # one hop further at the drain's peer (appendix A)
            eng.hops.setdefault(out, loop.Hops()).ranges.extend([n, h + 1] for n, h in pieces)
        if max_reached and eng.counters[link.sfd] == link.max:
            break
    if eng.live(link):
        somove.finish(eng, link, err, max_reached, eof=False)
