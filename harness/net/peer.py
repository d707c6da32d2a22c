"""The relay under test in its namespace, and the scapy peer that plays client and server.

`SpliceScene` is upstream's scapy.pl in one object: the relay runs as an agent role in the
relay namespace (splice mode, errignore, oobinline, 4096-byte buffers, non-blocking connect,
optionally clientreadable), and the test crafts the client's and the server's segments from
the peer namespace, where no address answers for them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scapy.layers.inet import IP, TCP
from scapy.packet import Packet, Raw

from ..run import Settings
from ..targets.base import RoleProcess
from .netns import Topology
from .wire import Seen, Seg, Wire, WireMismatch, describe, tcp_payload_len

UP_TIMEOUT = 10.0
DOWN_TIMEOUT = 15.0
RELAY_DOWN = "Broken pipe|Connection reset by peer"


def relay_opts(clientreadable: bool) -> dict[str, Any]:
    """scapy.pl's relay: errignore + relay, oobinline, buffers 2**12, non-blocking connect."""
    return {"oobinline": True, "rcvbuf": 4096, "sndbuf": 4096, "nonblocking": True,
            "connectnonblocking": True, "clientreadable": clientreadable,
            "steps": ["errignore", "relay"]}


def start_role(topo: Topology, ns: str, role: str, settings: Settings, logdir: Path,
               opts: dict[str, Any], listen: str | None = None,
               connect: tuple[str, int] | None = None, protocol: str = "tcp",
               mode: str = "splice", hold: bool = False) -> RoleProcess:
    spec: dict[str, Any] = {
        "role": role, "protocol": protocol, "mode": mode, "variant": "relay", "opts": opts,
        "backend": settings.backend, "personality": settings.personality,
        "scale": settings.scale, "hold": hold,
    }
    if listen:
        spec["listen"] = listen
    if connect:
        spec["connect"] = list(connect)
    return topo.spawn(ns, role, spec, logdir)


def listening_port(proc: RoleProcess) -> int:
    event = proc.wait_event("its listening port", lambda e: e.get("event") == "listening",
                            UP_TIMEOUT)
    return int(event["port"])


@dataclass
class SpliceScene:
    """One relay in splice mode between a fake client and a fake server (both scapy)."""

    topo: Topology
    wire: Wire
    settings: Settings
    logdir: Path
    clientreadable: bool = False
    relay: RoleProcess = field(init=False)
    relay_port: int = field(init=False)
    server_port: int = field(init=False)
    client_port: int = field(init=False)
    synack: Seen | None = None  # the relay's SYN+ACK to the client
    spliced_syn: Seen | None = None  # the relay's SYN to the server
    client_seq: int = 1  # next sequence number the fake client sends
    relay_port_server: int = 0  # the relay's source port toward the server

    def __post_init__(self) -> None:
        rng = random.Random()
        self.server_port = rng.randrange(20000, 30000)
        self.client_port = rng.randrange(30000, 40000)
        self.relay = start_role(
            self.topo, self.topo.relay_ns, "relay", self.settings, self.logdir,
            relay_opts(self.clientreadable), listen=self.topo.client.relay_addr,
            connect=(self.topo.server.peer_addr, self.server_port))
        self.relay_port = listening_port(self.relay)

    # ---- addressing

    def to_relay_from_client(self) -> IP:
        return IP(src=self.topo.client.peer_addr, dst=self.topo.client.relay_addr)

    def to_relay_from_server(self) -> IP:
        return IP(src=self.topo.server.peer_addr, dst=self.topo.server.relay_addr)

    def relay_to_client(self, **fields: Any) -> Seg:
        return Seg(src=self.topo.client.relay_addr, dst=self.topo.client.peer_addr,
                   sport=self.relay_port, dport=self.client_port, **fields)

    def relay_to_server(self, **fields: Any) -> Seg:
        return Seg(src=self.topo.server.relay_addr, dst=self.topo.server.peer_addr,
                   sport=self.relay_port_server or None, dport=self.server_port, **fields)

    # ---- the client leg

    def client_connect(self) -> Seen:
        """SYN to the relay (seq 0, window 65535); its SYN+ACK must acknowledge 1."""
        at = self.wire.send("client", self.to_relay_from_client() / TCP(
            sport=self.client_port, dport=self.relay_port, seq=0, flags="S", window=65535))
        self.synack = self.wire.expect("SYN+ACK from the relay to the client", "client",
                                       self.relay_to_client(flags="SA", ack=1), at)
        return self.synack

    @property
    def relay_isn(self) -> int:
        assert self.synack is not None
        return int(self.synack.pkt[TCP].seq)

    def client_ack(self) -> int:
        """Finish the client handshake; return the mark taken before the ACK went out."""
        return self.wire.send("client", self.to_relay_from_client() / TCP(
            sport=self.client_port, dport=self.relay_port, seq=1, ack=self.relay_isn + 1,
            flags="A", window=65535))

    def client_send(self, data: bytes, flags: str = "PA", urgptr: int = 0) -> Seen:
        """Data from the client; the relay must acknowledge all of it."""
        at = self.wire.send("client", self.to_relay_from_client() / TCP(
            sport=self.client_port, dport=self.relay_port, seq=self.client_seq,
            ack=self.relay_isn + 1, flags=flags, urgptr=urgptr, window=65535) / Raw(data))
        self.client_seq += len(data)
        return self.wire.expect(f"ACK of the client's {len(data)} bytes", "client",
                                self.relay_to_client(flags="A", ack=self.client_seq, length=0), at)

    # ---- the server leg

    def await_spliced_syn(self, start: int = 0) -> Seen:
        """The relay's SYN toward the server (window of 5 s from `start`)."""
        self.spliced_syn = self.wire.expect("the relay's SYN to the server", "server",
                                            self.relay_to_server(flags="S"), start)
        self.relay_port_server = int(self.spliced_syn.pkt[TCP].sport)
        return self.spliced_syn

    @property
    def syn_seq(self) -> int:
        assert self.spliced_syn is not None
        return int(self.spliced_syn.pkt[TCP].seq)

    def server_synack(self) -> int:
        return self.wire.send("server", self.to_relay_from_server() / TCP(
            sport=self.server_port, dport=self.relay_port_server, seq=0, ack=self.syn_seq + 1,
            flags="SA", window=65535))

    def await_relay_log(self, pattern: str, timeout: float = 5.0) -> str:
        return self.relay.wait_log(pattern, timeout)

    # ---- the end

    def reset_both(self, server_ack: int, client_seq: int | None = None) -> None:
        """RST both legs (upstream's last step), then the relay must end the way upstream's does.

        Upstream sleeps a second first; what that waits for is the relay's splice call, so
        wait for its "Spliced" line (a reset before it fails the splice call instead).
        """
        self.relay.wait_log("^Spliced$", UP_TIMEOUT)
        if self.spliced_syn is not None:
            self.wire.send("server", self.to_relay_from_server() / TCP(
                sport=self.server_port, dport=self.relay_port_server, seq=1, ack=server_ack,
                flags="RA"))
        self.wire.send("client", self.to_relay_from_client() / TCP(
            sport=self.client_port, dport=self.relay_port,
            seq=self.client_seq if client_seq is None else client_seq, ack=self.relay_isn + 1,
            flags="RA"))
        self.relay.wait_log(RELAY_DOWN, DOWN_TIMEOUT)
        status = self.relay.wait_exit(DOWN_TIMEOUT)
        if status != 0:
            raise WireMismatch(f"relay exited with status {status}\n{self.relay.tail()}")


def payload_of(pkt: Packet) -> bytes:
    return bytes(pkt[TCP].payload)[: tcp_payload_len(pkt)]


def check_urgent(wire: Wire, what: str, base: int, urgent_offset: int, data: bytes,
                 start: int, seg: Seg) -> list[Seen]:
    """The spliced bytes from sequence `base` on must be `data`, with the urgent mark kept.

    Upstream (OpenBSD) sees the 21 bytes in one ACK+URG segment at `base` with urgptr 11.
    Segmentation is the sending stack's business (a relay on Linux sends the bytes before
    the mark, the urgent byte, and the rest); what must hold on any stack is the mark
    itself: some segment has URG set with seq + urgptr = base + 11, BSD's "points past the
    urgent byte", and no segment before the urgent byte claims a later mark.
    Returns the data segments seen, in order.
    """
    want_ptr = base + urgent_offset
    got = b""
    segs: list[Seen] = []
    pos = start

    def data_seg(item: Seen) -> bool:
        return (not item.outgoing and seg.addressed(item.pkt) and tcp_payload_len(item.pkt) > 0
                and int(item.pkt[TCP].seq) == base + len(got))

    while len(got) < len(data):
        try:
            item = wire.wait(f"{what}: spliced bytes from seq {base + len(got)}", data_seg, pos,
                             link="server")
        except WireMismatch as e:
            raise WireMismatch(f"{what}: after {len(got)} of {len(data)} bytes\n  expected: "
                               f"{seg.text()} seq={base + len(got)}\n{e}") from None
        segs.append(item)
        got += payload_of(item.pkt)
        pos = item.index + 1
    if got[: len(data)] != data:
        raise WireMismatch(f"{what}: spliced bytes {got!r}, expected {data!r}")
    marks = [(s, int(s.pkt[TCP].seq) + int(s.pkt[TCP].urgptr)) for s in segs
             if "U" in str(s.pkt[TCP].flags)]
    lines = "\n    ".join(describe(s.pkt) for s in segs)
    if not any(mark == want_ptr for _s, mark in marks):
        raise WireMismatch(
            f"{what}: urgent mark lost\n  expected: a segment with URG and seq+urp = {want_ptr} "
            f"(seq {base} urp {urgent_offset} in one segment)\n  seen:\n    {lines}")
    holder = next(s for s in segs if int(s.pkt[TCP].seq) + tcp_payload_len(s.pkt) >= want_ptr)
    if "U" not in str(holder.pkt[TCP].flags):
        raise WireMismatch(f"{what}: the segment carrying the urgent byte has no URG flag\n"
                           f"  seen: {describe(holder.pkt)}\n  all:\n    {lines}")
    return segs


__all__ = ["RELAY_DOWN", "RelayedRun", "SpliceScene", "check_urgent", "listening_port", "payload_of",
           "relay_opts", "start_role"]


# ---- real roles on both sides (wire checks on relayed traffic)


@dataclass
class RelayedRun:
    """Client and server roles in the peer namespace, the relay in the relay namespace."""

    topo: Topology
    settings: Settings
    logdir: Path
    mode: str
    protocol: str
    client: dict[str, Any]
    relay: dict[str, Any]
    server: dict[str, Any]
    procs: dict[str, RoleProcess] = field(default_factory=dict)

    def start(self) -> None:
        """Server, relay, client as upstream; UDP roles are held until all are up."""
        hold = self.protocol == "udp"
        topo = self.topo

        def spawn(ns: str, role: str, opts: dict[str, Any], **kw: Any) -> RoleProcess:
            proc = start_role(topo, ns, role, self.settings, self.logdir, opts,
                              protocol=self.protocol, mode=self.mode, **kw)
            self.procs[role] = proc
            return proc

        server = spawn(topo.peer_ns, "server", self.server, listen=topo.server.peer_addr,
                       hold=hold)
        relay = spawn(topo.relay_ns, "relay", self.relay, listen=topo.client.relay_addr,
                      connect=(topo.server.peer_addr, listening_port(server)), hold=hold)
        client = spawn(topo.peer_ns, "client", self.client,
                       connect=(topo.client.relay_addr, listening_port(relay)), hold=hold)
        for proc in (client, relay, server):
            proc.wait_up(UP_TIMEOUT)
        for proc in (server, relay, client):
            proc.release()

    def finish(self, downs: dict[str, str]) -> dict[str, list[str]]:
        """Every role reaches its down line and exits 0; returns the logs."""
        for name in ("client", "relay", "server"):
            self.procs[name].wait_log(downs[name], DOWN_TIMEOUT)
        for name, proc in self.procs.items():
            status = proc.wait_exit(DOWN_TIMEOUT)
            if status != 0:
                raise WireMismatch(f"{name} exited with status {status}\n{proc.tail()}")
        return {name: proc.logs() for name, proc in self.procs.items()}

    def kill(self) -> None:
        for proc in self.procs.values():
            proc.kill()
