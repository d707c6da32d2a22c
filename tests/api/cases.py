"""The 19 upstream error/ cases and the check-order pairs of semantics appendix B.

A script is a list of socket operations (harness.steps.API_OPS) run in one
process on the target; every operation but the expected failure must succeed.
"""

from __future__ import annotations

from typing import Any

from harness.cases import ApiCase

from .detection import DETECTION
from .errata import ERRATA
from .matrix import MATRIX
from .semantics import SEMANTICS

LAST = -1
CONNECTED_PAIR: tuple[tuple[Any, ...], ...] = (
    ("tcp_listen", "L"), ("tcp_connect", "s", "L"), ("tcp_connect", "ss", "L"),
)
CONNECTED: tuple[tuple[Any, ...], ...] = (("tcp_listen", "L"), ("tcp_connect", "s", "L"))
NO_UDP = "FreeBSD splices TCP only: the splice is refused with EPROTONOSUPPORT"
NO_LOOP = "FreeBSD has no loop detection; the data would circulate until the sockets close"


def index_of(script: tuple[tuple[Any, ...], ...], op: str) -> int:
    return next(i for i, step in enumerate(script) if step[0] == op)


def case(id: str, script: tuple[tuple[Any, ...], ...], openbsd: str, freebsd: str | None = None,
         freebsd_at: str | None = None, doc: str = "", skip: dict[str, str] | None = None) -> ApiCase:
    """expected errno of the last operation; FreeBSD may fail elsewhere (freebsd_at: op name)."""
    expect = {"openbsd": (openbsd, LAST)}
    if freebsd is not None:
        expect["freebsd"] = (freebsd, index_of(script, freebsd_at) if freebsd_at else LAST)
    return ApiCase(id=id, script=script, expect=expect, doc=doc, skip=skip or {})


UDP_ELOOP = (("udp_bind", "s"), ("udp_connect", "ss", "s"), ("splice", "s", "ss"),
             ("send", "ss", "foo\n"), ("recv", "s", "foo\n"), ("recv", "s"))
UDP_ENOTCONN = (("udp_bind", "sb"), ("udp_connect", "sc", "sb"), ("splice", "sb", "sc"),
                ("splice", "sc", "sb"))

UPSTREAM: list[ApiCase] = [
    case("EBUSY", (*CONNECTED_PAIR, ("splice", "s", "ss"), ("tcp_connect", "so", "L"), ("splice", "s", "so")),
         "EBUSY", doc="the source is already spliced"),
    case("splice-EBUSY", (*CONNECTED_PAIR, ("splice", "s", "ss"), ("tcp_connect", "so", "L"), ("splice", "so", "ss")),
         "EBUSY", doc="the drain is already a splice target"),
    case("ELOOP", (*CONNECTED, ("accept", "ss", "L"), ("splice", "s", "ss"), ("send", "ss", "foo\n"),
                   ("recv", "s", "foo\n"), ("recv", "s")),
         "ELOOP", doc="a TCP self-loop over localhost is broken after 128 hops; the data stays",
         skip={"freebsd": NO_LOOP}),
    case("udp-ELOOP", UDP_ELOOP, "ELOOP", "EPROTONOSUPPORT", "splice", doc="a UDP self-loop"),
    case("ENOTCONN", (("tcp", "s"), ("tcp", "ss"), ("splice", "s", "ss")), "ENOTCONN",
         doc="an unconnected TCP source"),
    case("splice-ENOTCONN", (*CONNECTED, ("tcp", "ss"), ("splice", "s", "ss")), "ENOTCONN",
         doc="an unconnected TCP drain"),
    case("udp-ENOTCONN", UDP_ENOTCONN, "ENOTCONN", "EPROTONOSUPPORT", "splice",
         doc="a UDP source may be unconnected, a drain may not"),
    case("EOPNOTSUPP", (("tcp_listen", "s", 1), ("tcp", "ss"), ("splice", "s", "ss")), "EOPNOTSUPP", "EINVAL",
         doc="a listening source"),
    case("splice-EOPNOTSUPP", (*CONNECTED, ("tcp_listen", "ss", 1), ("splice", "s", "ss")), "EOPNOTSUPP", "EINVAL",
         doc="a listening drain"),
    case("splice-EBADF", (*CONNECTED, ("splice", "s", 23)), "EBADF", doc="drain descriptor 23 is not open"),
    case("splice-ENOTSOCK", (*CONNECTED, ("splice", "s", 0)), "ENOTSOCK", doc="drain descriptor 0 is not a socket"),
    case("splice-EINVAL", (*CONNECTED, ("setopt", "s", "short", "s")), "EINVAL", doc="a 2-byte option value"),
    case("max-EINVAL", (*CONNECTED_PAIR, ("setopt", "s", "struct", "ss", {"max": -1})), "EINVAL",
         doc="a negative max"),
    case("idle-EINVAL", (*CONNECTED_PAIR, ("setopt", "s", "struct", "ss", {"tv": [-1, -1]})), "EINVAL", "0",
         doc="a negative idle with max 0 (upstream's LP64 packing also made max negative; "
             "FreeBSD does not validate the idle time)"),
    case("splice-EPROTONOSUPPORT", (*CONNECTED, ("udp", "ss"), ("splice", "s", "ss")), "EPROTONOSUPPORT",
         doc="TCP source, UDP drain"),
    case("udp-EPROTONOSUPPORT", (("udp", "s"), ("tcp", "ss"), ("splice", "s", "ss")), "EPROTONOSUPPORT",
         doc="UDP source, TCP drain"),
    case("unix-EPROTONOSUPPORT", (("unix", "s"), ("unix", "ss"), ("splice", "s", "ss")), "EPROTONOSUPPORT",
         doc="unix sockets cannot splice"),
    case("inet-unix-EPROTONOSUPPORT", (("udp_bind", "s"), ("unix", "ss"), ("splice", "s", "ss")),
         "EPROTONOSUPPORT", doc="UDP source, unix drain"),
    case("unsplice-EPROTO", (*CONNECTED, ("unsplice", "s")), "EPROTO", "ENOTCONN",
         doc="unsplicing a socket that was never spliced"),
]

# semantics appendix B: check order and option forms
ORDER_AND_FORMS: list[ApiCase] = [
    case("order-bad-fd-negative-max", (*CONNECTED, ("setopt", "s", "struct", 23, {"max": -1})), "EINVAL", "EBADF",
         doc="OpenBSD checks max before the drain descriptor; FreeBSD after"),
    case("order-listening-bad-fd", (("tcp_listen", "s", 1), ("splice", "s", 23)), "EBADF", "EBADF",
         doc="the drain descriptor is looked up before the listening check"),
    case("order-unconnected-bad-fd", (("tcp", "s"), ("splice", "s", 23)), "EBADF",
         doc="the drain descriptor is looked up before the source's connection"),
    case("order-tcp-udp-unconnected", (("tcp", "s"), ("udp", "ss"), ("splice", "s", "ss")), "EPROTONOSUPPORT",
         doc="protocol mismatch beats both unconnected sockets"),
    case("order-spliced-unconnected-drain", (*CONNECTED_PAIR, ("splice", "s", "ss"), ("tcp", "so"),
                                             ("splice", "s", "so")), "ENOTCONN", "EBUSY",
         doc="OpenBSD checks the drain's connection before EBUSY; FreeBSD the source's splice first"),
    case("option-short-3-bytes", (*CONNECTED_PAIR, ("setopt", "s", "short", "ss")), "EINVAL",
         doc="fewer bytes than an int"),
    case("option-null-unsplices", (*CONNECTED_PAIR, ("splice", "s", "ss"), ("setopt", "s", "null"),
                                   ("unsplice", "s")), "EPROTO", "EINVAL", "setopt",
         doc="a NULL option value unsplices (OpenBSD), so a second unsplice finds nothing; FreeBSD refuses NULL"),
    case("option-int-form", (*CONNECTED_PAIR, ("setopt", "s", "int", "ss"), ("splice", "s", "ss")), "EBUSY",
         "EINVAL", "setopt", doc="a plain int is the drain descriptor (OpenBSD); FreeBSD wants the struct"),
    case("unsplice-unix", (("unix", "s"), ("unsplice", "s")), "EPROTONOSUPPORT", "ENOTCONN",
         doc="the protocol check comes before the unsplice branch (OpenBSD)"),
    case("unsplice-twice", (*CONNECTED_PAIR, ("splice", "s", "ss"), ("unsplice", "s"), ("unsplice", "s")),
         "EPROTO", "ENOTCONN", doc="an unsplice leaves nothing to unsplice"),
    case("counter-kept-after-unsplice", (*CONNECTED, ("accept", "a", "L"), ("tcp_connect", "d", "L"),
                                         ("accept", "p", "L"), ("splice", "a", "d"), ("send", "s", "hello\n"),
                                         ("recv", "p", "hello\n"), ("length", "a", 6), ("unsplice", "a"),
                                         ("length", "a", 6), ("splice", "a", "d"), ("length", "a", 0)),
         "0", doc="the counter is kept after unsplice and reset by the next splice"),
]

# the negative-idle quirk of upstream's LP64 packing, as upstream sends it
LP64_QUIRK = case("idle-EINVAL-upstream-packing",
                  (*CONNECTED_PAIR, ("setopt", "s", "struct", "ss", {"max": -1, "tv": [-2, 0]})), "EINVAL",
                  doc="upstream's pack('ixxxxqql!', fd, -1, -1, -1) makes max -1 and tv_sec -2")

API_CASES: list[ApiCase] = [*UPSTREAM, *ORDER_AND_FORMS, LP64_QUIRK, *SEMANTICS, *ERRATA, *MATRIX, *DETECTION]
