"""The check-order matrix of setsockopt(SO_SPLICE), semantics 2.1 (OpenBSD) and 5.1 (FreeBSD), as data.

Three groups, generated from small tables:

* ``order-FORM-SETUP``: one setsockopt call, the last operation of the script, in each option
  form on each setup. SETUP starts with the errno a valid struct call gets there on OpenBSD
  (order-negmax-EBADF-closed: a negative max with a closed drain descriptor; OpenBSD answers
  EINVAL, FreeBSD EBADF). Who wins follows from the two orders:

  - OpenBSD (2.1): a value under 4 bytes (5), the source's protocol (7), max (8), idle (9),
    the unsplice branch (10), the drain descriptor (12), the drain's protocol (13), listening
    (15), the source's connection (16), the drain's (17), EBUSY (18). The int form (4 bytes up
    to sizeof(struct splice)) carries no max and no idle (1.3).
  - FreeBSD (5.1): only the full struct; then the drain descriptor, max (idle is never checked),
    TCP on both sides, the source listening, its connection, its splice, the drain listening,
    its connection, its source.

* ``counter-live-CALL`` and ``counter-ended-CALL``: the counter after a refused call on a source
  with a live splice that moved 5 bytes, or whose splice moved 5 bytes and was unspliced. OpenBSD
  never touches it (1.4); FreeBSD zeroes it for refusals after the protocol check (5.1, errata 11).
  A live splice must still move bytes afterwards.
* ``unsplice-FORM-STATE``: the unsplice forms (NULL, int -1, struct with a negative descriptor,
  with valid or bad max and idle) on spliced and unspliced sockets (2.1 checks 7-10, 5.1).

Where the scripts of the two personalities differ (a refusal followed by checks), the case is
split, its id ends with the personality, and the other personality skips it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.cases import ApiCase

from .semantics import UDP_PAIR, Script

INT_MAX, INT_MIN = 2**31 - 1, -(2**31)
INT64_MAX, INT64_MIN = 2**63 - 1, -(2**63)
PERSONALITIES = ("openbsd", "freebsd")

L: Script = (("tcp_listen", "L"),)
SRC: Script = (("tcp_connect", "c", "L"), ("accept", "src", "L"))  # a connected source, c its peer
DRN: Script = (("tcp_connect", "drn", "L"), ("accept", "far", "L"))  # a connected drain, far its peer
OTHER: Script = (("tcp_connect", "x", "L"), ("accept", "xp", "L"))  # another connected socket, free
BUSY: Script = (("tcp_connect", "bc", "L"), ("accept", "bs", "L"), ("tcp_connect", "bd", "L"),
                ("accept", "bf", "L"), ("splice", "bs", "bd"))  # bd: a drain that has a source
SPLICED: Script = (*L, *SRC, *DRN, ("splice", "src", "drn"))
UDP_DRAIN: Script = (("udp_bind", "ub"), ("udp_connect", "ud", "ub"))  # a connected UDP socket


def index_of(script: Script, op: str) -> int:
    return next(i for i, step in enumerate(script) if step[0] == op)


def with_opts(op: tuple[Any, ...], **opts: Any) -> tuple[Any, ...]:
    """An operation with its keyword options (the dict the agent passes as keywords), if any."""
    given = {k: v for k, v in opts.items() if v}
    return (*op, given) if given else op


def outcome(op: tuple[Any, ...], errno: str) -> tuple[Any, ...]:
    """The operation itself when it must succeed, else a check that it fails with `errno`."""
    return op if errno == "0" else ("fails", errno, list(op))


def other_checks(id: str, personality: str) -> str:
    other = next(p for p in PERSONALITIES if p != personality)
    return f"the {personality} script; the {other} answer is checked by {id}-{other}"


def per_personality(id: str, doc: str, scripts: dict[str, Script]) -> list[ApiCase]:
    """One case when the scripts agree, else one per personality, each skipped on the other."""
    if scripts["openbsd"] == scripts["freebsd"]:
        return [ApiCase(id=id, script=scripts["openbsd"], expect={"openbsd": ("0", -1)}, doc=doc)]
    return [ApiCase(id=f"{id}-{p}", script=scripts[p], expect={"openbsd": ("0", -1)}, doc=f"{doc} [{p}]",
                    skip={q: other_checks(id, p) for q in PERSONALITIES if q != p})
            for p in PERSONALITIES]


# ---- order-FORM-SETUP


@dataclass(frozen=True)
class Form:
    id: str
    option: str  # setopt's form: "int" or "struct"
    doc: str
    max: int = 0
    tv: tuple[int, int] = (0, 0)
    optlen: int = 0  # a struct cut to optlen bytes (shorter than struct splice: the int form)

    @property
    def int_form(self) -> bool:
        return self.option == "int" or 0 < self.optlen < 20  # 20: the smallest struct splice (1.2)

    @property
    def bad_max(self) -> bool:
        return not self.int_form and self.max < 0

    @property
    def bad_idle(self) -> bool:
        sec, usec = self.tv
        return not self.int_form and (sec < 0 or usec < 0 or usec >= 1_000_000)

    def op(self, source: str, drain: str | int) -> tuple[Any, ...]:
        return with_opts(("setopt", source, self.option, drain), max=self.max,
                         tv=list(self.tv) if self.tv != (0, 0) else None, optlen=self.optlen)


FORMS = (
    Form("int", "int", "the int form (1.3)"),
    Form("old16", "struct", "a 16-byte {fd, max -1} value, the int form with its max dropped (1.2, 1.3)",
         max=-1, optlen=16),
    Form("struct", "struct", "the struct form (1.3)"),
    Form("negmax", "struct", "a negative max (2.1 check 8)", max=-1),
    Form("sec", "struct", "an idle tv_sec < 0 (2.1 check 9)", tv=(-1, 0)),
    Form("usec", "struct", "an idle tv_usec < 0 (2.1 check 9)", tv=(0, -1)),
    Form("million", "struct", "an idle tv_usec = 1000000 (2.1 check 9)", tv=(0, 1_000_000)),
    Form("negmax-million", "struct", "a negative max and tv_usec = 1000000 (2.1 checks 8-9)", max=-1, tv=(0, 1_000_000)),
)
# more values on the setup that splices: the bounds of max and idle, extra bytes
EDGE_FORMS = (
    Form("minmax", "struct", "max = INT64_MIN (2.1 check 8)", max=INT64_MIN),
    Form("maxmax", "struct", "max = INT64_MAX, no bound above (1.3)", max=INT64_MAX),
    Form("usec999999", "struct", "an idle of 5.999999 s, tv_usec below the bound (2.1 check 9)", tv=(5, 999_999)),
    Form("padded40", "struct", "a struct with 8 extra zero bytes, ignored (1.3)", optlen=40),
    Form("padded40-negmax", "struct", "a negative max in a struct with 8 extra bytes (1.3, 2.1 check 8)", max=-1, optlen=40),
)


@dataclass(frozen=True)
class Setup:
    id: str
    script: Script
    source: str
    drain: str | int
    openbsd: str  # the errno of a valid struct call, "0": it splices
    freebsd: str
    doc: str
    source_first: bool = False  # OpenBSD refuses the source's protocol before max and idle (2.1 check 7)
    udp_spliced: bool = False  # the setup splices UDP, which FreeBSD refuses there (5.1)

    @property
    def freebsd_early(self) -> int | None:
        """The index of the setup's splice when FreeBSD refuses it, else None."""
        return index_of(self.script, "splice") if self.udp_spliced else None


def connected(*more: tuple[Any, ...]) -> Script:
    return (*L, *SRC, *more)


LISTENING_SRC = ("tcp_listen", "src", 1)
UNCONNECTED_SRC = ("tcp", "src")
S = Setup
SETUPS = (
    # the drain descriptor (2.1 check 12; 5.1 the drain lookup comes first)
    S("EBADF-23", connected(), "src", 23, "EBADF", "EBADF", "drain descriptor 23, not open (2.1 check 12)"),
    S("EBADF-closed", connected(("closed_fd", "gone")), "src", "gone", "EBADF", "EBADF",
      "the number of a closed socket descriptor as drain (2.1 check 12)"),
    S("EBADF-intmax", connected(), "src", INT_MAX, "EBADF", "EBADF", "drain descriptor INT_MAX (2.1 check 12)"),
    S("ENOTSOCK-pipe", connected(("nonsocket", "p", "pipe")), "src", "p", "ENOTSOCK", "ENOTSOCK",
      "a pipe as drain (2.1 check 12)"),
    S("ENOTSOCK-file", connected(("nonsocket", "f", "file")), "src", "f", "ENOTSOCK", "ENOTSOCK",
      "a regular file as drain (2.1 check 12)"),
    S("ENOTSOCK-devnull", connected(("nonsocket", "n", "null")), "src", "n", "ENOTSOCK", "ENOTSOCK",
      "/dev/null as drain (2.1 check 12)"),
    S("EBADF-listening-source", (LISTENING_SRC,), "src", 23, "EBADF", "EBADF",
      "a listening source, drain 23 not open: the lookup comes before the states (2.1 checks 12, 15)"),
    S("EBADF-unconnected-source", (UNCONNECTED_SRC,), "src", 23, "EBADF", "EBADF",
      "an unconnected source, drain 23 not open (2.1 checks 12, 16)"),
    S("EBADF-spliced-source", SPLICED, "src", 23, "EBADF", "EBADF",
      "a spliced source, drain 23 not open (2.1 checks 12, 18)"),
    S("ENOTSOCK-udp-source", (("udp_bind", "src"), ("nonsocket", "p", "pipe")), "src", "p", "ENOTSOCK",
      "ENOTSOCK", "a UDP source, a pipe as drain (2.1 check 12; 5.1 lookup before TCP only)"),
    # protocols (2.1 checks 7 and 13; 5.1 TCP only, after the lookup and max)
    S("EPROTONOSUPPORT-unix-source", (*L, *DRN, ("unix", "src")), "src", "drn", "EPROTONOSUPPORT",
      "EPROTONOSUPPORT", "a unix source (2.1 check 7)", source_first=True),
    S("EPROTONOSUPPORT-unix-source-EBADF", (("unix", "src"),), "src", 23, "EPROTONOSUPPORT", "EBADF",
      "a unix source, drain 23 not open (2.1 check 7 before 12; 5.1 lookup first)", source_first=True),
    S("EPROTONOSUPPORT-unix-source-ENOTSOCK", (("unix", "src"), ("nonsocket", "p", "pipe")), "src", "p",
      "EPROTONOSUPPORT", "ENOTSOCK", "a unix source, a pipe as drain (2.1 check 7 before 12)", source_first=True),
    S("EPROTONOSUPPORT-unix-unix", (("unix", "src"), ("unix", "drn")), "src", "drn", "EPROTONOSUPPORT",
      "EPROTONOSUPPORT", "unix to unix (2.1 check 7)", source_first=True),
    S("EPROTONOSUPPORT-tcp-udp", connected(*UDP_DRAIN), "src", "ud", "EPROTONOSUPPORT", "EPROTONOSUPPORT",
      "a TCP source, a connected UDP drain (2.1 check 13)"),
    S("EPROTONOSUPPORT-tcp-unix", connected(("unix", "ux")), "src", "ux", "EPROTONOSUPPORT", "EPROTONOSUPPORT",
      "a TCP source, a unix drain (2.1 check 13)"),
    S("EPROTONOSUPPORT-udp-tcp", (*L, *DRN, ("udp_bind", "src")), "src", "drn", "EPROTONOSUPPORT",
      "EPROTONOSUPPORT", "a UDP source, a TCP drain (2.1 check 13)"),
    S("EPROTONOSUPPORT-udp-unix", (("udp_bind", "src"), ("unix", "ux")), "src", "ux", "EPROTONOSUPPORT",
      "EPROTONOSUPPORT", "a UDP source, a unix drain (2.1 check 13)"),
    S("EPROTONOSUPPORT-listening-udp", (LISTENING_SRC, *UDP_DRAIN), "src", "ud", "EPROTONOSUPPORT",
      "EPROTONOSUPPORT", "a listening TCP source, a UDP drain (2.1 check 13 before 15)"),
    S("EPROTONOSUPPORT-unconnected-udp", (UNCONNECTED_SRC, ("udp", "u")), "src", "u", "EPROTONOSUPPORT",
      "EPROTONOSUPPORT", "an unconnected TCP source, an unconnected UDP drain (2.1 check 13 before 16)"),
    S("EPROTONOSUPPORT-spliced-udp", (*SPLICED, *UDP_DRAIN), "src", "ud", "EPROTONOSUPPORT", "EPROTONOSUPPORT",
      "a spliced TCP source, a UDP drain (2.1 check 13 before 18; 5.1 TCP only before EBUSY)"),
    # listening (2.1 check 15, either side; 5.1 EINVAL: the source's before its connection,
    # the drain's after the source's EBUSY)
    S("EOPNOTSUPP-listening-source", (*L, *DRN, LISTENING_SRC), "src", "drn", "EOPNOTSUPP", "EINVAL",
      "a listening source (2.1 check 15)"),
    S("EOPNOTSUPP-listening-drain", connected(("tcp_listen", "lst", 1)), "src", "lst", "EOPNOTSUPP", "EINVAL",
      "a listening drain (2.1 check 15)"),
    S("EOPNOTSUPP-listening-source-unconnected-drain", (LISTENING_SRC, ("tcp", "u")), "src", "u",
      "EOPNOTSUPP", "EINVAL", "a listening source, an unconnected drain (2.1 check 15 before 17)"),
    S("EOPNOTSUPP-unconnected-source-listening-drain", (UNCONNECTED_SRC, ("tcp_listen", "lst", 1)), "src", "lst",
      "EOPNOTSUPP", "ENOTCONN",
      "an unconnected source, a listening drain (2.1 check 15 before 16; 5.1 the source's connection first)"),
    S("EOPNOTSUPP-spliced-source-listening-drain", (*SPLICED, ("tcp_listen", "lst", 1)), "src", "lst",
      "EOPNOTSUPP", "EBUSY", "a spliced source, a listening drain (2.1 check 15 before 18; 5.1 EBUSY first)"),
    S("EOPNOTSUPP-listening-source-busy-drain", (*L, *BUSY, LISTENING_SRC), "src", "bd", "EOPNOTSUPP",
      "EINVAL", "a listening source, a drain that has a source (2.1 check 15 before 18)"),
    # the source's connection (2.1 check 16; 5.1 after the source's listening check)
    S("ENOTCONN-unconnected-source", (*L, *DRN, UNCONNECTED_SRC), "src", "drn", "ENOTCONN", "ENOTCONN",
      "an unconnected TCP source (2.1 check 16)"),
    S("ENOTCONN-unconnected-source-unconnected-drain", (UNCONNECTED_SRC, ("tcp", "u")), "src", "u",
      "ENOTCONN", "ENOTCONN", "unconnected source and drain (2.1 check 16 before 17)"),
    S("ENOTCONN-unconnected-source-busy-drain", (*L, *BUSY, UNCONNECTED_SRC), "src", "bd", "ENOTCONN",
      "ENOTCONN", "an unconnected source, a drain that has a source (2.1 check 16 before 18)"),
    # the drain's connection (2.1 check 17)
    S("ENOTCONN-unconnected-drain", connected(("tcp", "u")), "src", "u", "ENOTCONN", "ENOTCONN",
      "an unconnected TCP drain (2.1 check 17)"),
    S("ENOTCONN-udp-unconnected-drain", (("udp_bind", "src"), ("udp_bind", "u")), "src", "u", "ENOTCONN",
      "EPROTONOSUPPORT", "a UDP source, a bound unconnected UDP drain (2.1 check 17)"),
    S("ENOTCONN-udp-unbound-drain", (("udp_bind", "src"), ("udp", "u")), "src", "u", "ENOTCONN",
      "EPROTONOSUPPORT", "a UDP source, an unbound UDP drain (2.1 check 17)"),
    S("ENOTCONN-spliced-source-unconnected-drain", (*SPLICED, ("tcp", "u")), "src", "u", "ENOTCONN", "EBUSY",
      "a spliced source, an unconnected drain (2.1 check 17 before 18; 5.1 EBUSY first)"),
    # EBUSY (2.1 check 18)
    S("EBUSY-spliced-source", (*SPLICED, *OTHER), "src", "x", "EBUSY", "EBUSY",
      "a spliced source, another drain (2.1 check 18)"),
    S("EBUSY-same-pair", SPLICED, "src", "drn", "EBUSY", "EBUSY", "the same pair again (2.1 check 18)"),
    S("EBUSY-busy-drain", (*L, *SRC, *BUSY), "src", "bd", "EBUSY", "EBUSY",
      "a drain that has a source (2.1 check 18)"),
    S("EBUSY-udp-spliced-source", (*UDP_PAIR, ("splice", "src", "drn"), *UDP_DRAIN), "src", "ud", "EBUSY",
      "EPROTONOSUPPORT", "a spliced UDP source, another UDP drain (2.1 check 18; FreeBSD refuses the first splice)",
      udp_spliced=True),
    # accepted (2.1 step 19)
    S("ok-tcp", (*L, *SRC, *DRN), "src", "drn", "0", "0", "a connected TCP pair (2.1 step 19)"),
    S("ok-tcp4-tcp6", connected(("pair", "tcp", 6, "far", "drn")), "src", "drn", "0", "0",
      "TCPv4 into TCPv6: one send routine (2.1 check 13)"),
    S("ok-connecting-drain", connected(("tcp_connecting", "drn")), "src", "drn", "0", "0",
      "a drain still connecting counts as connected (2.1 check 17)"),
    S("ok-reverse", SPLICED, "drn", "src", "0", "0",
      "the drain of a splice into its source, a bidirectional relay (2.1 allowed on purpose)"),
    S("ok-chain", (*SPLICED, *OTHER), "drn", "x", "0", "0",
      "the drain of a splice as source of another, a chain (2.1 allowed on purpose)"),
    S("ok-udp-unconnected-source", (("udp_bind", "src"), ("udp_bind", "far"), ("udp_connect", "drn", "far")),
      "src", "drn", "0", "EPROTONOSUPPORT", "a bound unconnected UDP source (2.1 check 16: TCP only)"),
    S("ok-udp-unbound-source", (("udp", "src"), ("udp_bind", "far"), ("udp_connect", "drn", "far")),
      "src", "drn", "0", "EPROTONOSUPPORT", "an unbound UDP source (2.1 check 16: TCP only)"),
)


def openbsd_answer(form: Form, setup: Setup) -> str:
    if (form.bad_max or form.bad_idle) and not setup.source_first:
        return "EINVAL"  # checks 8 and 9 come before everything but the source's protocol
    return setup.openbsd


def freebsd_answer(form: Form, setup: Setup) -> str:
    if setup.freebsd_early is not None:
        return setup.freebsd
    if form.int_form:
        return "EINVAL"  # only the full struct (5.1)
    if form.bad_max and setup.freebsd not in ("EBADF", "ENOTSOCK"):
        return "EINVAL"  # max after the drain lookup, before everything else; idle never checked
    return setup.freebsd


def order_case(form: Form, setup: Setup) -> ApiCase:
    script = (*setup.script, form.op(setup.source, setup.drain))
    ob, fb = openbsd_answer(form, setup), freebsd_answer(form, setup)
    early = setup.freebsd_early
    return ApiCase(id=f"order-{form.id}-{setup.id}", script=script,
                   expect={"openbsd": (ob, -1), "freebsd": (fb, -1 if early is None else early)},
                   doc=f"{form.doc}; {setup.doc}: openbsd {ob}, freebsd {fb} (5.1)")


ORDER: list[ApiCase] = [
    *(order_case(form, setup) for setup in SETUPS for form in FORMS),
    *(order_case(form, setup) for setup in SETUPS if setup.id == "ok-tcp" for form in EDGE_FORMS),
]


# ---- counter-live-CALL, counter-ended-CALL (1.4; 5.1 counter reset quirk, errata 11)

# every kind of drain a refused call can name: x connected and free, u unconnected, ud UDP,
# ux unix, p a pipe, bd a drain that has a source, L the listener, gone a closed number
WORLD: Script = (*L, *SRC, *DRN, *OTHER, ("tcp", "u"), *UDP_DRAIN, ("unix", "ux"),
                 ("nonsocket", "p", "pipe"), *BUSY, ("closed_fd", "gone"))
MOVED: Script = (("splice", "src", "drn"), ("send", "c", "hello"), ("recv_exact", "far", 5, "hello"),
                 ("length", "src", 5))


@dataclass(frozen=True)
class Refusal:
    id: str
    op: tuple[Any, ...]
    openbsd: str
    freebsd: str
    freebsd_zeroes: bool  # refused after FreeBSD's counter reset (5.1)
    doc: str


R = Refusal
STRUCT = "struct"
LIVE_REFUSALS = (
    R("short", ("setopt", "src", "short", "x"), "EINVAL", "EINVAL", False, "a 2-byte value (2.1 check 5)"),
    R("int-EBADF", ("setopt", "src", "int", "gone"), "EBADF", "EINVAL", False,
      "the int form with a closed descriptor (2.1 check 12; 5.1 no int form)"),
    R("int-EBUSY", ("setopt", "src", "int", "x"), "EBUSY", "EINVAL", False,
      "the int form with another drain (2.1 check 18; 5.1 no int form)"),
    R("null-4096", ("setopt", "src", "null", {"optlen": 4096}), "EINVAL", "EFAULT", False,
      "a NULL value of 4096 bytes (2.1 check 3; 5.1 no bound, copyin from NULL)"),
    R("padded-4096", ("setopt_padded", "src", "x", 4096), "EINVAL", "EBUSY", True,
      "a 4096-byte struct for another drain (2.1 check 3; errata 11 no bound, then EBUSY)"),
    R("EBADF-closed", ("setopt", "src", STRUCT, "gone"), "EBADF", "EBADF", False,
      "a closed drain descriptor (2.1 check 12)"),
    R("ENOTSOCK-pipe", ("setopt", "src", STRUCT, "p"), "ENOTSOCK", "ENOTSOCK", False, "a pipe (2.1 check 12)"),
    R("EPROTONOSUPPORT-udp", ("setopt", "src", STRUCT, "ud"), "EPROTONOSUPPORT", "EPROTONOSUPPORT", False,
      "a UDP drain (2.1 check 13)"),
    R("EPROTONOSUPPORT-unix", ("setopt", "src", STRUCT, "ux"), "EPROTONOSUPPORT", "EPROTONOSUPPORT", False,
      "a unix drain (2.1 check 13)"),
    R("negmax-EBUSY", ("setopt", "src", STRUCT, "x", {"max": -1}), "EINVAL", "EINVAL", False,
      "a negative max for another drain (2.1 check 8; 5.1 max before the reset)"),
    R("negmax-EBADF", ("setopt", "src", STRUCT, "gone", {"max": -1}), "EINVAL", "EBADF", False,
      "a negative max with a closed descriptor (2.1 check 8 before 12)"),
    R("million-EBUSY", ("setopt", "src", STRUCT, "x", {"tv": [0, 1_000_000]}), "EINVAL", "EBUSY", True,
      "an idle tv_usec = 1000000 for another drain (2.1 check 9; 5.1 idle not checked)"),
    R("EOPNOTSUPP-listening", ("setopt", "src", STRUCT, "L"), "EOPNOTSUPP", "EBUSY", True,
      "a listening drain (2.1 check 15; 5.1 EBUSY first)"),
    R("ENOTCONN-unconnected", ("setopt", "src", STRUCT, "u"), "ENOTCONN", "EBUSY", True,
      "an unconnected drain (2.1 check 17; 5.1 EBUSY first)"),
    R("EBUSY-other", ("setopt", "src", STRUCT, "x"), "EBUSY", "EBUSY", True, "another drain (2.1 check 18)"),
    R("EBUSY-same", ("setopt", "src", STRUCT, "drn"), "EBUSY", "EBUSY", True, "the same drain again (2.1 check 18)"),
    R("EBUSY-busy-drain", ("setopt", "src", STRUCT, "bd"), "EBUSY", "EBUSY", True,
      "a drain that has a source (2.1 check 18)"),
)
ENDED_REFUSALS = (
    R("EPROTO", ("unsplice", "src"), "EPROTO", "ENOTCONN", False, "a second unsplice (2.1 check 10)"),
    R("int-EBADF", ("setopt", "src", "int", "gone"), "EBADF", "EINVAL", False,
      "the int form with a closed descriptor (2.1 check 12; 5.1 no int form)"),
    R("EBADF-closed", ("setopt", "src", STRUCT, "gone"), "EBADF", "EBADF", False,
      "a closed drain descriptor (2.1 check 12)"),
    R("ENOTSOCK-pipe", ("setopt", "src", STRUCT, "p"), "ENOTSOCK", "ENOTSOCK", False, "a pipe (2.1 check 12)"),
    R("EPROTONOSUPPORT-udp", ("setopt", "src", STRUCT, "ud"), "EPROTONOSUPPORT", "EPROTONOSUPPORT", False,
      "a UDP drain (2.1 check 13)"),
    R("negmax", ("setopt", "src", STRUCT, "x", {"max": -1}), "EINVAL", "EINVAL", False,
      "a negative max (2.1 check 8; 5.1 max before the reset)"),
    R("million-ENOTCONN", ("setopt", "src", STRUCT, "u", {"tv": [0, 1_000_000]}), "EINVAL", "ENOTCONN", True,
      "an idle tv_usec = 1000000 with an unconnected drain (2.1 check 9; 5.1 idle not checked)"),
    R("EOPNOTSUPP-listening", ("setopt", "src", STRUCT, "L"), "EOPNOTSUPP", "EINVAL", True,
      "a listening drain (2.1 check 15)"),
    R("ENOTCONN-unconnected", ("setopt", "src", STRUCT, "u"), "ENOTCONN", "ENOTCONN", True,
      "an unconnected drain (2.1 check 17)"),
    R("EBUSY-busy-drain", ("setopt", "src", STRUCT, "bd"), "EBUSY", "EBUSY", True,
      "a drain that has a source (2.1 check 18)"),
)


def live_script(refusal: Refusal, personality: str) -> Script:
    errno = getattr(refusal, personality)
    left = 0 if personality == "freebsd" and refusal.freebsd_zeroes else 5
    return (*WORLD, *MOVED, outcome(refusal.op, errno), ("length", "src", left), ("send", "c", "abc"),
            ("recv_exact", "far", 3, "abc"), ("length", "src", left + 3))


def ended_script(refusal: Refusal, personality: str) -> Script:
    errno = getattr(refusal, personality)
    left = 0 if personality == "freebsd" and refusal.freebsd_zeroes else 5
    return (*WORLD, *MOVED, ("unsplice", "src"), outcome(refusal.op, errno), ("length", "src", left),
            ("send", "c", "abc"), ("recv_exact", "src", 3, "abc"))


COUNTER: list[ApiCase] = [
    *(case for r in LIVE_REFUSALS for case in per_personality(
        f"counter-live-{r.id}",
        f"refused on a live splice that moved 5 bytes: {r.doc}; openbsd {r.openbsd} keeps the counter (1.4), "
        f"freebsd {r.freebsd} {'zeroes' if r.freebsd_zeroes else 'keeps'} it (5.1); the splice goes on",
        {p: live_script(r, p) for p in PERSONALITIES})),
    *(case for r in ENDED_REFUSALS for case in per_personality(
        f"counter-ended-{r.id}",
        f"refused after a splice that moved 5 bytes was unspliced: {r.doc}; openbsd {r.openbsd} keeps the "
        f"counter (1.4), freebsd {r.freebsd} {'zeroes' if r.freebsd_zeroes else 'keeps'} it (5.1)",
        {p: ended_script(r, p) for p in PERSONALITIES})),
]


# ---- unsplice-FORM-STATE (2.1 checks 3, 7-10; 5.1 unsplice errors)


@dataclass(frozen=True)
class Unsplice:
    id: str
    op: tuple[Any, ...]  # the setopt arguments after the socket
    doc: str
    bad: bool = False  # a struct with a bad max or idle
    int_form: bool = False  # shorter than struct splice: FreeBSD refuses it (5.1)

    @property
    def null_optlen(self) -> int | None:
        if self.op[0] != "null":
            return None
        return self.op[1]["optlen"] if len(self.op) > 1 else 0

    def call(self, source: str) -> tuple[Any, ...]:
        return ("setopt", source, *self.op)


U = Unsplice
UNSPLICE_FORMS = (
    U("null", ("null",), "a NULL value (1.3)"),
    U("null32", ("null", {"optlen": 32}), "a NULL value of 32 bytes (1.3)"),
    U("null4096", ("null", {"optlen": 4096}), "a NULL value of 4096 bytes (2.1 check 3: EINVAL first)"),
    U("int", ("int", -1), "the int form -1 (1.3)", int_form=True),
    U("int-intmin", ("int", INT_MIN), "the int form INT_MIN: any negative descriptor (1.3)", int_form=True),
    U("old16-negmax", ("struct", -1, {"max": -1, "optlen": 16}),
      "a 16-byte {-1, max -1}: the int form, its max dropped (1.3)", int_form=True),
    U("struct", ("struct", -1), "a struct with descriptor -1 (1.3)"),
    U("struct-intmin", ("struct", INT_MIN), "a struct with descriptor INT_MIN (1.3)"),
    U("struct-max-idle", ("struct", -1, {"max": 100, "tv": [2, 500_000]}),
      "a struct with descriptor -1, max 100 and idle 2.5 s, valid values (2.1 checks 8-9)"),
    U("negmax", ("struct", -1, {"max": -1}), "a struct -1 with a negative max (2.1 check 8)", bad=True),
    U("sec", ("struct", -1, {"tv": [-1, 0]}), "a struct -1 with tv_sec < 0 (2.1 check 9)", bad=True),
    U("usec", ("struct", -1, {"tv": [0, -1]}), "a struct -1 with tv_usec < 0 (2.1 check 9)", bad=True),
    U("million", ("struct", -1, {"tv": [0, 1_000_000]}), "a struct -1 with tv_usec = 1000000 (2.1 check 9)",
      bad=True),
    U("negmax-million", ("struct", -1, {"max": -1, "tv": [0, 1_000_000]}),
      "a struct -1 with a negative max and tv_usec = 1000000 (2.1 checks 8-9)", bad=True),
)


@dataclass(frozen=True)
class State:
    id: str
    script: Script
    doc: str
    live: bool = False  # spliced: the call may unsplice it
    unix: bool = False
    listening: bool = False
    udp: bool = False


UDP_MOVED: Script = (*UDP_PAIR, ("splice", "src", "drn"), ("send_datagram", "c", 2), ("recv_datagram", "far", 2),
                     ("length", "src", 2))
STATES = (
    State("spliced", (*L, *SRC, *DRN, *MOVED), "a TCP source spliced, 5 bytes moved", live=True),
    State("never", connected(), "a connected TCP socket, never spliced"),
    State("ended", (*L, *SRC, *DRN, *MOVED, ("unsplice", "src")), "a TCP socket unspliced after 5 bytes"),
    State("listening", (LISTENING_SRC,), "a listening TCP socket", listening=True),
    State("unconnected", (UNCONNECTED_SRC,), "an unconnected TCP socket"),
    State("udp", (("udp_bind", "src"),), "a bound UDP socket, not spliced"),
    State("udp-spliced", UDP_MOVED, "a UDP source spliced, 2 bytes moved", live=True, udp=True),
    State("unix", (("unix", "src"),), "a unix socket", unix=True),
)


def unsplice_openbsd(form: Unsplice, state: State) -> str:
    optlen = form.null_optlen
    if optlen is not None and optlen > 2048:
        return "EINVAL"  # sys_setsockopt, before SO_SPLICE is looked at (2.1 check 3)
    if state.unix:
        return "EPROTONOSUPPORT"  # check 7 precedes the unsplice branch
    if form.bad:
        return "EINVAL"  # checks 8-9, also for unsplice requests
    return "0" if state.live else "EPROTO"


def unsplice_freebsd(form: Unsplice, state: State) -> str:
    if state.udp:
        return "EPROTONOSUPPORT"  # the setup's splice, refused before the call
    optlen = form.null_optlen
    if optlen is not None:
        return "EFAULT" if optlen else "EINVAL"  # copyin from NULL (5.1)
    if form.int_form:
        return "EINVAL"  # shorter than struct splice
    if state.listening:
        return "EINVAL"
    return "0" if state.live else "ENOTCONN"  # max and idle not checked on this path


def after_unsplice(state: State, errno: str) -> Script:
    """What must hold after the call on a spliced source: unspliced (errno "0") or still spliced."""
    if state.udp:
        if errno == "0":
            return (("length", "src", 2), ("send_datagram", "c", 3), ("recv_datagram", "src", 3))
        return (("send_datagram", "c", 3), ("recv_datagram", "far", 3), ("length", "src", 5))
    if errno == "0":
        return (("length", "src", 5), ("send", "c", "abc"), ("recv_exact", "src", 3, "abc"))
    return (("length", "src", 5), ("send", "c", "abc"), ("recv_exact", "far", 3, "abc"), ("length", "src", 8))


def unsplice_cases(form: Unsplice, state: State) -> list[ApiCase]:
    id = f"unsplice-{form.id}-{state.id}"
    ob, fb = unsplice_openbsd(form, state), unsplice_freebsd(form, state)
    doc = f"{form.doc} on {state.doc}: openbsd {ob} (2.1 checks 7-10), freebsd {fb} (5.1)"
    call = form.call("src")
    if not state.live:
        return [ApiCase(id=id, script=(*state.script, call), expect={"openbsd": (ob, -1), "freebsd": (fb, -1)},
                        doc=doc)]
    if state.udp:  # FreeBSD refuses the setup's splice; OpenBSD runs the whole script
        script = (*state.script, outcome(call, ob), *after_unsplice(state, ob))
        return [ApiCase(id=id, script=script, doc=doc,
                        expect={"openbsd": ("0", -1), "freebsd": (fb, index_of(script, "splice"))})]
    return per_personality(id, doc, {p: (*state.script, outcome(call, e), *after_unsplice(state, e))
                                     for p, e in (("openbsd", ob), ("freebsd", fb))})


UNSPLICE: list[ApiCase] = [case for state in STATES for form in UNSPLICE_FORMS
                           for case in unsplice_cases(form, state)]

MATRIX: list[ApiCase] = [*ORDER, *COUNTER, *UNSPLICE]
