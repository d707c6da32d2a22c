"""somove() for SOCK_DGRAM: datagram by datagram, whole or not at all (section 4).

The pass peeks a run of queued datagrams at once (mmsg.py), judges them one by
one in queue order as the kernel's loop would, sends the ones it moves with
one call and then consumes them from the source. A datagram that is not moved
stays queued; one that could not be sent for an error is lost, as the kernel
loses it.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import loop, mmsg, probe, somove
from .link import Link

if TYPE_CHECKING:
    from .engine import Engine

NOWAIT = int(socket.MSG_DONTWAIT)
CONSUME = int(socket.MSG_DONTWAIT | socket.MSG_TRUNC)


@dataclass
class Verdict:
    """What the kernel's loop would do with a run of datagrams, once all `take` are sent."""

    take: int = 0
    err: int = 0
    max_reached: bool = False
    stop: bool = False
    hops: list[loop.Hops | None] = field(default_factory=list)  # per datagram taken, where it has a count


@dataclass
class Pass:
    """What stays the same for every datagram of one pass, looked up once."""

    local: probe.Addr | None
    sndbuf: int
    casts: loop.Casts = field(default_factory=loop.Casts)
    senders: dict[bytes, tuple[probe.Addr | None, loop.Hops | None]] = field(default_factory=dict)  # per batch


def move(eng: Engine, link: Link) -> None:
    src, dst = link.source, link.drain
    link.waiting = False
    max_reached = False
    err = 0
    try:
        local = probe.addr(src.getsockname())
    except OSError:
        local = None
    one = Pass(local, probe.sndbuf(dst))
    out = loop.out_key(dst, None)  # where the datagrams arrive, and whether that is ours
    ours = loop.ours(eng, out)
    gso = stays_on_host(link, out, one)
    batch = eng.batch()
    while True:
        check = somove.checks(eng, link)
        if check is not None:
            err = check
            break
        try:
            n = peek(eng, batch, link)
        except BlockingIOError:
            break
        except OSError as e:
            err = e.errno or errno.EIO
            break
        verdict = judge(eng, link, batch, n, one)
        sent, lost = 0, 0
        if verdict.take:
            try:
                sent = batch.send(link.dfd, 0, verdict.take, NOWAIT, gso)
            except BlockingIOError:
                link.waiting = True
                break
            except OSError as e:
                lost, err = 1, e.errno or errno.EIO  # the kernel loses the datagram too
        batch.consume(link.sfd, sent + lost, CONSUME)
        lens = batch.lens
        eng.counters[link.sfd] += sum(lens[:sent])
        for i in range(sent + lost):
            hops = verdict.hops[i]
            pieces = [(lens[i], 0)] if hops is None else hops.take(lens[i], datagram=True)
            if ours and out is not None and i < sent:  # one hop further at the drain's peer (appendix A)
                eng.hops.setdefault(out, loop.Hops()).ranges.extend([m, h + 1] for m, h in pieces)
        spoil_check(eng, batch, link, sent + lost, n)
        if err:
            break
        if sent == verdict.take:
            err, max_reached = verdict.err, verdict.max_reached
            if verdict.stop or n < mmsg.BATCH:
                break
        # fewer sent than judged: Linux's sendmmsg dropped the error of the next; try it again
    if eng.live(link):
        somove.finish(eng, link, err, max_reached, eof=False)


def judge(eng: Engine, link: Link, batch: mmsg.Batch, n: int, one: Pass) -> Verdict:
    """The datagrams the kernel would move, in queue order, and how its loop would end."""
    v = Verdict()
    one.senders.clear()  # hop counts change as the pass sends: looked up again per batch
    counter = eng.counters[link.sfd]
    eloop = link.personality.eloop
    names = batch.names(n)
    controls = batch.controls(n) if eloop else None
    ahead: dict[int, int] = {}  # datagrams taken so far per hop count, by id
    for i in range(n):
        size = batch.lens[i]
        if link.max and size >= link.max - counter:
            v.max_reached = True  # this datagram reaches max, or does not fit (4: max)
        sender, hops = sender_of(eng, one, names[i * mmsg.NAME:(i + 1) * mmsg.NAME], batch)
        if eloop:
            count = 0
            if hops is not None:
                k = ahead.get(id(hops), 0)
                count = hops.ranges[k][1] if k < len(hops.ranges) else 0
            at = i * mmsg.CONTROL + mmsg.PKTINFO_AT
            if count >= loop.M_MAXLOOP or (controls is not None and one.casts.looped(
                    int.from_bytes(controls[at:at + 4], sys.byteorder, signed=True),
                    controls[at + 8:at + 12], sender)):
                v.err, v.stop = errno.ELOOP, True
                return v
        if size > one.sndbuf:
            v.err, v.stop = errno.EMSGSIZE, True  # sosend() of an atomic datagram over sb_hiwat
            return v
        if link.max and counter + size > link.max:
            v.stop = True
            return v
        if hops is not None:
            ahead[id(hops)] = ahead.get(id(hops), 0) + 1
        v.hops.append(hops)
        counter += size
        v.take += 1
        if v.max_reached and counter == link.max:
            v.stop = True
            return v
    return v


def sender_of(eng: Engine, one: Pass, raw: bytes,
              batch: mmsg.Batch) -> tuple[probe.Addr | None, loop.Hops | None]:
    """A datagram's sender, and the hop counts of data in flight from it, if any."""
    known = one.senders.get(raw)
    if known is None:
        sender = batch.address(raw)
        hops = None if one.local is None or sender is None else eng.hops.get((one.local, sender))
        known = one.senders[raw] = (sender, hops if hops is not None and hops.ranges else None)
    return known


def stays_on_host(link: Link, out: tuple[probe.Addr, probe.Addr] | None, one: Pass) -> bool:
    """The drain's peer is on this host: runs of datagrams may go as one GSO send (mmsg.py).

    Datagrams that leave the host go one by one, so that the wire shows each.
    """
    if out is None:
        return False
    if link.gso_for is None or link.gso_for[0] != out[0]:
        link.gso_for = (out[0], one.casts.is_local(out[0][0]))
    return link.gso_for[1]


def peek(eng: Engine, batch: mmsg.Batch, link: Link) -> int:
    """The head datagram, then as many more as the batch holds (none on a spoiled socket)."""
    n = batch.peek(link.source, 0, 1, None, probe.PEEK_NOWAIT)
    if n and not eng.spoiled(link.source):
        with contextlib.suppress(BlockingIOError):  # the head was all
            n += batch.peek(link.source, 1, mmsg.BATCH - 1, batch.lens[0], probe.PEEK_NOWAIT)
    return n


def spoil_check(eng: Engine, batch: mmsg.Batch, link: Link, consumed: int, peeked: int) -> None:
    """A zero-length datagram peeked past the head and left queued spoils offset peeking (mmsg.py)."""
    if any(batch.lens[i] == 0 for i in range(max(consumed, 1), peeked)):
        eng.spoil(link.source)
