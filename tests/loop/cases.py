"""loop/: chains and loops of spliced sockets, ELOOP at 128 hops (sosplice-cases 2.5, semantics 3.8).

Each upstream script becomes an API script (harness.steps.API_OPS) that runs in one
process on the target, as chain.pl, loop.pl and bcast.pl do.
"""

from __future__ import annotations

from typing import Any

from harness.cases import ApiCase

M_MAXLOOP = 128
COUNTS = (1, 2, 3, 127, 128, 129, 200)
NO_UDP = "FreeBSD splices TCP only"
NO_LOOP = "FreeBSD has no loop detection (no ELOOP); the data would circulate"
SUCCEEDS = {"openbsd": ("0", -1), "freebsd": ("0", -1)}

Script = tuple[tuple[Any, ...], ...]


def chain(inet: int, proto: str, count: int) -> ApiCase:
    """chain.pl -inet -c count -p proto: count splices a[i] -> c[i+1]; "foo" enters at c[0]."""
    ops: list[tuple[Any, ...]] = [("nofile", 3 * (count + 1) + 64)]
    ops += [("pair", proto, inet, f"a{i}", f"c{i}") for i in range(count + 1)]
    ops += [("splice", f"a{i}", f"c{i + 1}") for i in range(count)]
    ops.append(("send", "c0", "foo"))
    if count <= M_MAXLOOP:
        ops.append(("recv", f"a{count}", "foo"))
        doc = f"{count} hops: the data arrives at the end of the chain"
    else:
        # the splice out of a[128] is dissolved with ELOOP and the data waits there
        ops += [("recv", f"a{M_MAXLOOP}", "foo"), ("error", f"a{M_MAXLOOP}", "ELOOP"),
                ("recv_fails", f"a{count}", "EAGAIN")]
        doc = f"{count} hops: dissolved with ELOOP at hop {M_MAXLOOP}, the data stays there"
    skip = {}
    if proto == "udp":
        skip["freebsd"] = NO_UDP
    elif count > M_MAXLOOP:
        skip["freebsd"] = NO_LOOP
    return ApiCase(id=f"chain-ipv{inet}-proto{proto}-count{count}", script=tuple(ops),
                   expect=SUCCEEDS, doc=doc, skip=skip)


def loop(inet: int, proto: str) -> ApiCase:
    """loop.pl: one connection spliced both ways; "foo" circulates until ELOOP."""
    ops: list[tuple[Any, ...]] = [("pair", proto, inet, "a", "c")]
    if proto == "udp":
        ops.append(("connect_back", "a", "c"))
    ops += [("splice", "a", "c"), ("splice", "c", "a"), ("send", "c", "foo"),
            ("recv", "a", "foo"), ("error", "a", "ELOOP")]
    return ApiCase(id=f"loop-ipv{inet}-proto{proto}", script=tuple(ops), expect=SUCCEEDS,
                   doc="a socket pair spliced both ways: ELOOP on the accepted side, the data stays",
                   skip={"freebsd": NO_UDP if proto == "udp" else NO_LOOP})


BCAST_FOO: Script = (
    ("bcast_pair", "a", "c"), ("splice", "a", "c"), ("splice", "c", "a"),
    ("send", "c", "foo"), ("recv", "a", "foo"), ("error", "a", "ELOOP"),
    # beyond upstream: refused at once, not after 128 rounds, so nothing was moved
    ("length", "a", 0),
)
BCAST_BAR: Script = (("send", "a", "bar"), ("recv", "c", "bar"), ("error", "c", "ELOOP"))


def bcast(halves: Script = BCAST_BAR) -> ApiCase:
    return ApiCase(id="bcast", script=BCAST_FOO + halves, expect=SUCCEEDS,
                   doc="a looped broadcast datagram is refused with ELOOP at once",
                   skip={"freebsd": NO_UDP})


LOOP_CASES: list[ApiCase] = [
    *(chain(inet, proto, count) for inet in (4, 6) for proto in ("tcp", "udp") for count in COUNTS),
    *(loop(inet, proto) for inet in (4, 6) for proto in ("tcp", "udp")),
]
BCAST = bcast()
