"""tests/packet: what a relay puts on the wire, checked on real relayed traffic.

Client and server are agent roles in the peer namespace, the relay is one in the relay
namespace; the test sniffs both links. Every case runs in copy and splice mode: copy is the
reference, so a case that fails only in splice mode is a splice bug.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness.run import Settings

if TYPE_CHECKING:
    from harness.net.netns import Topology
    from harness.net.peer import RelayedRun
    from harness.net.wire import Seen, Wire

    Factory = Callable[..., RelayedRun]

pytestmark = pytest.mark.packet

CLIENT_DOWN = "Shutdown|Broken pipe|Connection reset by peer"


@pytest.fixture
def relayed(real_topo: Topology, real_wire: Wire, local_only: Settings, logdir: Path,
            mode: str) -> Iterator[Factory]:
    from harness.net.peer import RelayedRun

    runs: list[RelayedRun] = []

    def make(protocol: str, client: dict[str, Any], relay: dict[str, Any],
             server: dict[str, Any]) -> RelayedRun:
        run = RelayedRun(real_topo, local_only, logdir, mode, protocol, client, relay, server)
        runs.append(run)
        run.start()
        return run

    yield make
    for run in runs:
        run.kill()


def frames(wire: Wire, link: str, outgoing: bool, proto: Any) -> list[Seen]:
    """The frames of one direction of a link, once everything sent so far is captured."""
    wire.flush()
    with wire.cond:
        return [s for s in wire.seen if s.link == link and s.outgoing == outgoing and proto in s.pkt]


def test_no_fin_at_source_eof(relayed: Factory, real_wire: Wire, local_only: Settings) -> None:
    """The client's EOF ends the splice, but the FIN toward the server is the relay's own.

    The relay holds its sockets open after the splice has ended; the drain's FIN must come
    only when the relay shuts down, not when the source hit EOF (semantics: a splice never
    shuts the drain down).
    """
    from harness.net.wire import TCP, WireMismatch, describe

    hold = 2.0  # scenario seconds the relay keeps its sockets after the splice ended
    run = relayed("tcp", {"oobinline": True}, {"steps": ["relay", ["sleep", hold]]},
                  {"oobinline": True})
    logs = run.finish({"client": CLIENT_DOWN, "relay": "Shutdown", "server": "Shutdown"})
    assert "End" in logs["relay"], f"the relay did not see the source's EOF: {logs['relay']}"
    fin_in = [s for s in frames(real_wire, "client", True, TCP) if "F" in str(s.pkt[TCP].flags)]
    fin_out = [s for s in frames(real_wire, "server", False, TCP) if "F" in str(s.pkt[TCP].flags)]
    if not fin_in or not fin_out:
        raise WireMismatch(f"expected a FIN on each link, seen client>relay {len(fin_in)}, "
                           f"relay>server {len(fin_out)}\n{real_wire.transcript()}")
    gap = float(fin_out[0].pkt.time) - float(fin_in[0].pkt.time)
    least = hold * local_only.scale * 0.5
    if gap < least:
        raise WireMismatch(
            f"the relay's FIN to the server came {gap:.3f} s after the client's FIN; the relay "
            f"held its sockets {hold * local_only.scale:g} s after the splice ended, so the FIN "
            f"was sent by the splice itself at the source's EOF\n"
            f"  client FIN: {describe(fin_in[0].pkt)}\n  relay FIN:  {describe(fin_out[0].pkt)}")


def test_server_reset_reaches_relay(relayed: Factory, real_wire: Wire) -> None:
    """tcp/args-reset on the wire: the server's RST arrives on the relay's link, and the relay
    reports ECONNRESET for its drain."""
    from harness.net.wire import TCP, WireMismatch

    run = relayed("tcp", {"steps": ["errignore", "write_stream"], "len": 2**17, "sndbuf": 2**15},
                  {"steps": ["errignore", "relay"], "rcvbuf": 4096, "sndbuf": 4096},
                  {"steps": [["sleep", 3], "solingerout"], "rcvbuf": 4096})
    logs = run.finish({"client": CLIENT_DOWN, "relay": "Broken pipe|Connection reset by peer",
                       "server": "Shutdown"})
    rst = [s for s in frames(real_wire, "server", True, TCP) if "R" in str(s.pkt[TCP].flags)]
    if not rst:
        raise WireMismatch("no RST from the server on the relay's link\n"
                           + real_wire.transcript(only=lambda s: s.link == "server"))
    relay_log = "\n".join(logs["relay"])
    assert "ECONNRESET" in relay_log or "Connection reset by peer" in relay_log, (
        f"the server's RST (at {rst[0].time:.3f} s) did not reach the relay:\n{relay_log}")


def test_udp_datagram_in_one_out(relayed: Factory, real_wire: Wire, local_only: Settings,
                                 mode: str) -> None:
    """Every datagram into the relay leaves it as exactly one datagram of the same length."""
    from harness.net.wire import UDP, WireMismatch

    if local_only.personality == "freebsd" and mode == "splice":
        pytest.skip("freebsd: FreeBSD splices TCP only (semantics 5.1)")

    # a run of one length: the emulated pass may send such a run as one GSO send on this
    # host, never towards another (the wire must show each datagram)
    lengths = [1, 10, 100, 1000, 1472, 1472, 1472, 1472, 251, 2]
    run = relayed("udp", {"lengths": lengths}, {"idle": 3}, {"idle": 4})
    run.finish({"client": CLIENT_DOWN, "relay": "Shutdown", "server": "Shutdown"})

    def sizes(link: str, outgoing: bool) -> list[int]:
        return [int(s.pkt[UDP].len) - 8 for s in frames(real_wire, link, outgoing, UDP)]

    into, out = sizes("client", True), sizes("server", False)
    if into != lengths or out != into:
        raise WireMismatch(
            f"datagram lengths\n  sent by the client: {lengths}\n  into the relay:     {into}\n"
            f"  out of the relay:   {out}\n" + real_wire.transcript())


@pytest.mark.usefixtures("urgent_forwarded")
def test_urgent_flag_kept_oobinline(relayed: Factory, real_wire: Wire) -> None:
    """With oobinline, every urgent byte leaves the relay with URG and the same mark.

    The mark is compared as a stream offset (seq - ISN + urgent pointer) on both links, so
    segmentation does not matter.
    """
    from harness.net.wire import TCP, WireMismatch, describe

    run = relayed("tcp", {"steps": ["write_oob"]}, {"oobinline": True}, {"steps": ["read_oob"],
                                                                           "oobinline": True})
    run.finish({"client": CLIENT_DOWN, "relay": "Shutdown", "server": "Shutdown"})

    def marks(link: str, outgoing: bool) -> tuple[list[int], list[Any]]:
        segs = frames(real_wire, link, outgoing, TCP)
        syn = next((s for s in segs if str(s.pkt[TCP].flags) in ("S", "SA")), None)
        if syn is None:
            raise WireMismatch(f"no SYN on the {link} link\n{real_wire.transcript()}")
        isn = int(syn.pkt[TCP].seq)
        urgent = [s for s in segs if "U" in str(s.pkt[TCP].flags)]
        return sorted({int(s.pkt[TCP].seq) - isn - 1 + int(s.pkt[TCP].urgptr) for s in urgent}), urgent

    sent, sent_segs = marks("client", True)
    relayed_marks, out_segs = marks("server", False)
    if not sent:
        raise WireMismatch("the client sent no urgent data\n" + real_wire.transcript())
    if sent != relayed_marks:
        seen = "\n    ".join(describe(s.pkt) for s in out_segs) or "(no URG segment)"
        want = "\n    ".join(describe(s.pkt) for s in sent_segs)
        raise WireMismatch(
            f"urgent marks (stream offsets past the urgent byte)\n  expected: {sent}\n"
            f"  seen:     {relayed_marks}\n  client's URG segments:\n    {want}\n"
            f"  relay's URG segments:\n    {seen}")
