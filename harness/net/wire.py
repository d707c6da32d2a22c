"""What crosses the links: a capture of both veth links, raw sends, and segment matchers.

One `Wire` per test sniffs both peer-side interfaces from before the first packet
(AsyncSniffer, started_callback), so no segment can slip past between two expectations.
Expectations are waits with deadlines over that capture. A failed expectation reads like
packetdrill: the segment expected beside the segments seen, and the capture is written as
pcap files into the test's work directory.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scapy.config import conf
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw
from scapy.sendrecv import AsyncSniffer
from scapy.utils import wrpcap

from .netns import Link, Topology, call_in

EXPECT_TIMEOUT = 5.0  # upstream's sniff window per packet
BARRIER_ETHERTYPE = 0x88B5  # IEEE 802 local experimental ethertype 1
_barriers = itertools.count()


def is_barrier(pkt: Packet) -> bool:
    return Ether in pkt and int(pkt[Ether].type) == BARRIER_ETHERTYPE and Raw in pkt


class WireMismatch(AssertionError):
    """A segment did not appear, or appeared with other values than expected."""


# ---- segments


FLAG_ORDER = "FSRPAUEC"


def flag_text(flags: Any) -> str:
    """TCP flags as a letter set in a fixed order: 'S', 'SA', 'PA', 'UA', ..."""
    text = str(flags)
    return "".join(c for c in FLAG_ORDER if c in text) or "."


def tcp_payload_len(pkt: Packet) -> int:
    """Payload bytes of a TCP segment from the IP header (padding on short frames excluded)."""
    ip, tcp = pkt[IP], pkt[TCP]
    return int(ip.len) - int(ip.ihl) * 4 - int(tcp.dataofs) * 4


def describe(pkt: Packet) -> str:
    """One line per segment, packetdrill-like: addresses, flags, seq, ack, len, urp, win."""
    if IP in pkt and TCP in pkt:
        ip, tcp = pkt[IP], pkt[TCP]
        return (f"{ip.src}:{tcp.sport} > {ip.dst}:{tcp.dport} {flag_text(tcp.flags):<4} "
                f"seq={tcp.seq} ack={tcp.ack} len={tcp_payload_len(pkt)} urp={tcp.urgptr} "
                f"win={tcp.window}")
    if IP in pkt and UDP in pkt:
        ip, udp = pkt[IP], pkt[UDP]
        return f"{ip.src}:{udp.sport} > {ip.dst}:{udp.dport} udp len={int(udp.len) - 8}"
    return str(pkt.summary())


@dataclass(frozen=True)
class Seg:
    """An expected TCP segment; None means any value. `flags` is exact unless `flags_any`."""

    src: str | None = None
    dst: str | None = None
    sport: int | None = None
    dport: int | None = None
    flags: str | None = None
    seq: int | None = None
    ack: int | None = None
    length: int | None = None
    urp: int | None = None
    win: int | None = None
    has_flags: str = ""  # flags that must be set, whatever else is

    def addressed(self, pkt: Packet) -> bool:
        """Does `pkt` belong to the flow this expectation is about (addresses and ports)?"""
        if IP not in pkt or TCP not in pkt:
            return False
        ip, tcp = pkt[IP], pkt[TCP]
        return ((self.src is None or ip.src == self.src) and (self.dst is None or ip.dst == self.dst)
                and (self.sport is None or tcp.sport == self.sport)
                and (self.dport is None or tcp.dport == self.dport))

    def mismatches(self, pkt: Packet) -> list[str]:
        tcp = pkt[TCP]
        seen: dict[str, Any] = {"flags": flag_text(tcp.flags), "seq": int(tcp.seq), "ack": int(tcp.ack),
                "length": tcp_payload_len(pkt), "urp": int(tcp.urgptr), "win": int(tcp.window)}
        out = []
        for name in ("flags", "seq", "ack", "length", "urp", "win"):
            want = getattr(self, name)
            if name == "flags" and want is not None:
                want = flag_text(want)
            if want is not None and want != seen[name]:
                out.append(f"{name}: expected {want}, seen {seen[name]}")
        missing = [c for c in self.has_flags if c not in str(seen["flags"])]
        if missing:
            out.append(f"flags: expected {''.join(missing)} set, seen {seen['flags']}")
        return out

    def text(self) -> str:
        def v(x: object) -> str:
            return "*" if x is None else str(x)

        flags = flag_text(self.flags) if self.flags is not None else (
            f"{self.has_flags}+" if self.has_flags else "*")
        return (f"{v(self.src)}:{v(self.sport)} > {v(self.dst)}:{v(self.dport)} {flags:<4} "
                f"seq={v(self.seq)} ack={v(self.ack)} len={v(self.length)} urp={v(self.urp)} "
                f"win={v(self.win)}")


@dataclass
class Seen:
    index: int
    time: float
    link: str
    pkt: Packet
    outgoing: bool  # sent by the peer (the test), not by the relay

    def __str__(self) -> str:
        arrow = "peer>" if self.outgoing else "relay>"
        return f"#{self.index:<3} {self.time:8.3f} {self.link:<6} {arrow:<6} {describe(self.pkt)}"


# ---- the wire


@dataclass
class Wire:
    """Capture both links of a topology (peer side) and send raw frames on them."""

    topo: Topology
    seen: list[Seen] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)
    t0: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self._ifmap = {link.peer_if: link for link in self.topo.links.values()}
        started = threading.Event()

        def start() -> tuple[AsyncSniffer, dict[str, Any]]:
            sniffer = AsyncSniffer(iface=list(self._ifmap), prn=self._add, store=False,
                                   started_callback=started.set)
            sniffer.start()
            senders = {name: conf.L2socket(iface=link.peer_if)
                       for name, link in self.topo.links.items()}
            return sniffer, senders

        self.sniffer, self.senders = call_in(self.topo.peer_ns, start)
        if not started.wait(EXPECT_TIMEOUT):
            self.close()
            raise WireMismatch(f"the sniffer on {', '.join(self._ifmap)} did not start "
                               f"within {EXPECT_TIMEOUT:g} s")

    def _add(self, pkt: Packet) -> None:
        link = self._ifmap.get(str(getattr(pkt, "sniffed_on", "")))
        if link is None or Ether not in pkt:
            return
        with self.cond:
            self.seen.append(Seen(len(self.seen), time.monotonic() - self.t0, link.name, pkt,
                                  outgoing=pkt[Ether].src == link.peer_mac))
            self.cond.notify_all()

    def mark(self) -> int:
        """The index the next captured frame gets: expectations 'after this point' start here."""
        with self.cond:
            return len(self.seen)

    def send(self, link: str, layer3: Packet) -> int:
        """Send an IP packet from the peer on `link`; return the mark taken just before."""
        veth = self.topo.links[link]
        at = self.mark()
        self.senders[link].send(Ether(src=veth.peer_mac, dst=veth.relay_mac) / layer3)
        return at

    def flush(self, timeout: float = EXPECT_TIMEOUT) -> None:
        """Barrier: every frame on the links before this call is in the capture afterwards.

        A frame of the local experimental ethertype goes out on each link (the relay's kernel
        drops it); a packet socket queues frames in order, so once the sniffer has the
        barrier it has everything before it.
        """
        for name, veth in self.topo.links.items():
            token = f"sosplice-barrier-{next(_barriers)}".encode()
            at = self.mark()
            self.senders[name].send(Ether(src=veth.peer_mac, dst=veth.relay_mac,
                                          type=BARRIER_ETHERTYPE) / Raw(token))
            self.wait(f"the capture barrier on the {name} link",
                      lambda i, t=token: i.outgoing and is_barrier(i.pkt)  # type: ignore[misc]
                      and bytes(i.pkt[Raw].load).startswith(t), at, timeout, name)

    def wait(self, what: str, match: Callable[[Seen], bool], start: int = 0,
             timeout: float = EXPECT_TIMEOUT, link: str | None = None,
             context: Callable[[Seen], bool] | None = None) -> Seen:
        """The first captured frame from `start` on that matches; WireMismatch at the deadline."""
        deadline = time.monotonic() + timeout
        with self.cond:
            pos = start
            while True:
                for item in self.seen[pos:]:
                    if (link is None or item.link == link) and match(item):
                        return item
                pos = len(self.seen)
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
        raise WireMismatch(f"no {what} within {timeout:g} s\n{self.transcript(start, context)}")

    def expect(self, what: str, link: str, want: Seg, start: int = 0,
               timeout: float = EXPECT_TIMEOUT, among: Callable[[Packet], bool] | None = None,
               ) -> Seen:
        """The relay's next segment of `want`'s flow on `link` must be `want`.

        The first segment of the flow after `start` (among those that `among` accepts, say
        "no payload" to step over retransmitted data) is compared field by field; a
        different one fails at once, packetdrill-style, with the transcript of the flow.
        """
        def flow(item: Seen) -> bool:
            return (not item.outgoing and want.addressed(item.pkt)
                    and (among is None or among(item.pkt)))

        try:
            item = self.wait(what, flow, start, timeout, link, context=flow)
        except WireMismatch as e:
            raise WireMismatch(f"{what}\n  expected: {want.text()}\n{e}") from None
        bad = want.mismatches(item.pkt)
        if bad:
            raise WireMismatch(
                f"{what}: segment differs\n  expected: {want.text()}\n  seen:     "
                f"{describe(item.pkt)}\n  " + "\n  ".join(bad) + "\n"
                + self.transcript(start, lambda i: not i.outgoing and want.addressed(i.pkt)))
        return item

    def transcript(self, start: int = 0, only: Callable[[Seen], bool] | None = None) -> str:
        with self.cond:
            items = [i for i in self.seen[start:] if not is_barrier(i.pkt)
                     and (only is None or only(i) or i.outgoing)]
        lines = [str(i) for i in items[-40:]]
        head = f"  captured since #{start} ({len(items)} frames"
        head += ", last 40)" if len(items) > 40 else ")"
        return head + ":\n    " + ("\n    ".join(lines) if lines else "(nothing)")

    def save(self, directory: Path) -> list[Path]:
        """Write one pcap per link into `directory` (the test's kept work directory)."""
        with self.cond:
            items = list(self.seen)
        paths = []
        for name in self.topo.links:
            path = directory / f"{name}-link.pcap"
            pkts = [i.pkt for i in items if i.link == name]
            if pkts:
                wrpcap(str(path), pkts)
                paths.append(path)
        return paths

    def close(self) -> None:
        for sock in getattr(self, "senders", {}).values():
            sock.close()
        sniffer = getattr(self, "sniffer", None)
        if sniffer is not None and sniffer.running:
            sniffer.stop(join=True)


__all__ = ["EXPECT_TIMEOUT", "IP", "TCP", "UDP", "Link", "Seen", "Seg", "Wire", "WireMismatch",
           "describe", "flag_text", "tcp_payload_len"]
