"""Detection power (issue 13, kinds 3-6): API cases that a plausible wrong splicer fails.

Kind 3: the harness's own reads go through the splicer and see what an application sees.
Kind 4: what re-arms the idle timer, and a dissolved splice's timer never reaching a new one.
Kind 5: the initial move is synchronous, checked over many fresh pairs so luck cannot pass it.
Kind 6: rules that depend on a duration hold at --splice-time-scale 1 as at the default 0.2
(those that measure the duration itself run in real seconds, min_scale).

Topology as in semantics.py: c -> src (the source), drn (the drain) -> far. Each case names
the rule and the section of semantics.md (or its errata) it checks; tests/selftest/
mutants_detect.py holds the wrong splicers that each of them catches.
"""

from __future__ import annotations

from harness.cases import ApiCase

from .errata import FREEBSD_ONLY, FULL, READS_NOT_HIDDEN
from .semantics import NO_EFBIG, NO_ETIMEDOUT, NO_UDP, TCP_PAIR, UDP_PAIR, Script

NO_ERROR = "FreeBSD stores no error in so_error: the read has none to return (5.1)"
MAX = 32768  # well over the drain's 4096-byte send buffer: every pass near max is cut short by space
EXTRA = 100  # bytes behind max, left on the source
PAIRS = 20  # fresh socket pairs of the synchronous-move cases


def rule(id: str, script: Script, doc: str, skip: dict[str, str] | None = None,
         expect: dict[str, tuple[str, int]] | None = None, min_scale: float | None = None) -> ApiCase:
    return ApiCase(id=id, script=script, expect=expect or {"openbsd": ("0", -1)}, doc=doc, skip=skip or {},
                   min_scale=min_scale)


# the kind 6 cases tell 0.5 s from 1 s and 1.3 s from 1 s: at the default scale their margins
# would be tens of milliseconds, so they run in real seconds at any scale
REAL_TIME = 1.0


def fresh_pairs(count: int, each: Script) -> Script:
    """`each` once per fresh pair: c{i} -> s{i} spliced into d{i} -> f{i} (names with {i} in them)."""
    script: list[tuple[object, ...]] = [("tcp_listen", "L")]
    for i in range(count):
        script += [("tcp_connect", f"c{i}", "L"), ("accept", f"s{i}", "L"),
                   ("tcp_connect", f"d{i}", "L"), ("accept", f"f{i}", "L")]
        script += [tuple(a.format(i=i) if isinstance(a, str) else a for a in op) for op in each]
    return tuple(script)


# the drain full before the splice; MAX + EXTRA bytes queued on the source when it is spliced
MAX_INTO_FULL: Script = (
    *TCP_PAIR, ("sndbuf", "drn", 4096), ("fill", "drn"), ("send_size", "c", MAX + EXTRA),
    ("queued", "src", MAX + EXTRA), ("splice", "src", "drn", {"max": MAX}), ("readable", "src", False, 1),
    ("read_all", "far"), ("readable", "src", True, 10),
)
MAX_REST: Script = (("length", "src", MAX), ("recv_exact", "src", EXTRA), ("nonblocking", "src"),
                    ("recv_fails", "src", "EAGAIN"))


def quiet_end(after: float) -> Script:
    """FreeBSD's end of a splice by its timer: no error, nothing readable; `after` (scaled) past the
    timer a byte sent to the source stays there (5.1 idle)."""
    return (("pause", after), ("send", "c", "z"), ("recv", "src", "z"), ("error", "src", "0"))


def idle_resplice(freebsd: bool) -> Script:
    """A splice with idle 1 unspliced, a new one with idle 3: only the new timer ends it."""
    end = quiet_end(1.5) if freebsd else (("readable", "src", True, 5), ("error", "src", "ETIMEDOUT"))
    return (*TCP_PAIR, ("splice", "src", "drn", {"idle": 1}), ("unsplice", "src"),
            ("splice", "src", "drn", {"idle": 3}), ("readable", "src", False, 2), *end)


def idle_subsecond(freebsd: bool) -> Script:
    """Idle 0.5: not over before 0.35, over before 0.95 (a whole second, rounded up, is too late)."""
    end = quiet_end(0.6) if freebsd else (("readable", "src", True, 0.6), ("error", "src", "ETIMEDOUT"))
    return (*TCP_PAIR, ("splice", "src", "drn", {"idle": 0.5}), ("readable", "src", False, 0.35), *end,
            ("length", "src", 0))


def idle_below_sleep(freebsd: bool) -> Script:
    """Idle 0.7, then a silent 1: the splice is over when the pause ends."""
    end = quiet_end(0) if freebsd else (("readable", "src", True, 0), ("error", "src", "ETIMEDOUT"))
    return (*TCP_PAIR, ("splice", "src", "drn", {"idle": 0.7}), ("pause", 1), *end)


DETECTION: list[ApiCase] = [
    # ---- kind 3: the harness's reads see the spliced state
    rule("detect-read-nonblocking-plain",
         (*TCP_PAIR, *FULL, ("nonblocking", "src"), ("read_fails", "src", "EAGAIN"),
          ("readable", "src", False, 0), ("unsplice", "src"), ("readable", "src", True, 1)),
         "a read without MSG_DONTWAIT on a non-blocking spliced source is EAGAIN, not the queued data "
         "(3.9, errata 3)", {"freebsd": READS_NOT_HIDDEN}),
    rule("detect-read-error-reset",
         (*TCP_PAIR, ("splice", "src", "drn"), ("abort", "far"), ("readable", "src", True, 10),
          ("read_fails", "src", "EPIPE"), ("error", "src", "0"), ("nonblocking", "src"),
          ("recv_fails", "src", "EAGAIN")),
         "the drain's peer resets: a read of the source fails with EPIPE once, then SO_ERROR is 0 "
         "(3.6, errata 3)", {"freebsd": NO_ERROR}),
    rule("detect-read-error-after-data",
         (*TCP_PAIR, ("splice", "src", "drn", {"max": 4}), ("send", "c", "abcdefg"),
          ("recv_exact", "far", 4, "abcd"), ("readable", "src", True, 10), ("recv_exact", "src", 3, "efg"),
          ("read_fails", "src", "EFBIG"), ("error", "src", "0"), ("length", "src", 4)),
         "after max the reads return the data behind it, then EFBIG once, then SO_ERROR is 0 (3.6)",
         {"freebsd": NO_EFBIG}),
    rule("detect-max-drain-full", (*MAX_INTO_FULL, ("error", "src", "EFBIG"), *MAX_REST),
         "max into a full drain: passes cut short by space do not end the splice; it ends at exactly "
         "max with EFBIG (3.3 step 3, 3.4)", {"freebsd": NO_EFBIG}),
    rule("detect-max-drain-full-freebsd", (*MAX_INTO_FULL, ("error", "src", "0"), *MAX_REST),
         "FreeBSD: max into a full drain: short steps do not end the splice; it ends at exactly max, "
         "without an error (5.1 max)", {"openbsd": FREEBSD_ONLY}),
    # ---- kind 4: timers across passes and splices
    rule("detect-idle-udp-zero",
         (*UDP_PAIR, ("splice", "src", "drn", {"idle": 2}), ("send_datagram", "c", 0), ("pause", 1),
          ("send_datagram", "c", 0), ("pause", 1), ("send_datagram", "c", 0), ("pause", 1),
          ("readable", "src", False, 0), ("readable", "src", True, 10), ("error", "src", "ETIMEDOUT"),
          ("length", "src", 0)),
         "a zero-length datagram runs a pass that moves no byte and re-arms the idle timer (3.7, errata 2)",
         {"freebsd": NO_UDP}),
    rule("detect-idle-resplice-none",
         (*TCP_PAIR, ("splice", "src", "drn", {"idle": 2}), ("unsplice", "src"), ("splice", "src", "drn"),
          ("readable", "src", False, 3), ("error", "src", "0"), ("send", "c", "x"),
          ("recv_exact", "far", 1, "x"), ("unsplice", "src")),
         "the idle timer of an unspliced splice never ends a new splice without idle (3.7: cancelled by "
         "any dissolve; 5.1)"),
    rule("detect-idle-resplice-longer", idle_resplice(freebsd=False),
         "a new splice with a longer idle ends by its own timer, not the old one's (3.7)",
         {"freebsd": NO_ETIMEDOUT}),
    rule("detect-idle-resplice-longer-freebsd", idle_resplice(freebsd=True),
         "FreeBSD: a new splice with a longer idle ends by its own one-shot timer, quietly (5.1 idle)",
         {"openbsd": FREEBSD_ONLY}),
    # ---- kind 5: the initial move is synchronous
    rule("detect-sync-initial-x20",
         fresh_pairs(PAIRS, (("send", "c{i}", "abc"), ("queued", "s{i}", 3), ("splice", "s{i}", "d{i}"),
                             ("length", "s{i}", 3), ("recv_exact", "f{i}", 3, "abc"))),
         f"{PAIRS} fresh pairs: data queued before the splice is counted as soon as setsockopt returns "
         "(1.4 timing, 3.2; 5.1 same)"),
    rule("detect-sync-initial-max-x20",
         fresh_pairs(PAIRS, (("send", "c{i}", "abc"), ("queued", "s{i}", 3),
                             ("splice", "s{i}", "d{i}", {"max": 2}), ("readable", "s{i}", True, 0),
                             ("length", "s{i}", 2), ("error", "s{i}", "EFBIG"))),
         f"{PAIRS} fresh pairs: max reached by the initial move has dissolved the splice with EFBIG when "
         "setsockopt returns (1.3, 3.2)", {"freebsd": NO_EFBIG}),
    # ---- kind 6: durations, under any time scale
    rule("detect-idle-subsecond", idle_subsecond(freebsd=False),
         "a sub-second idle (tv_usec) is honoured, neither dropped nor rounded to a second (1.5, 3.7)",
         {"freebsd": NO_ETIMEDOUT}, min_scale=REAL_TIME),
    rule("detect-idle-subsecond-freebsd", idle_subsecond(freebsd=True),
         "FreeBSD: a sub-second idle ends the splice quietly on time (5.1 idle)",
         {"openbsd": FREEBSD_ONLY}, min_scale=REAL_TIME),
    rule("detect-idle-below-sleep", idle_below_sleep(freebsd=False),
         "an idle just shorter than a silence has fired when the silence ends (3.7)", {"freebsd": NO_ETIMEDOUT},
         min_scale=REAL_TIME),
    rule("detect-idle-below-sleep-freebsd", idle_below_sleep(freebsd=True),
         "FreeBSD: an idle just shorter than a silence has ended the splice when it ends (5.1 idle)",
         {"openbsd": FREEBSD_ONLY}, min_scale=REAL_TIME),
    rule("detect-idle-above-sleep",
         (*TCP_PAIR, ("splice", "src", "drn", {"idle": 1.3}), ("pause", 1), ("readable", "src", False, 0),
          ("send", "c", "x"), ("recv_exact", "far", 1, "x"), ("length", "src", 1), ("unsplice", "src")),
         "an idle just longer than a silence has not fired when the silence ends (3.7; 5.1 one-shot too)",
         min_scale=REAL_TIME),
]
