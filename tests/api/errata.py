"""The rules of semantics section 0 ("Errata"), as data-movement scripts.

Each script checks one rule of a second reading of the kernel code; the id names the
errata item. Topology as in semantics.py: c -> src (the source), drn (the drain) -> far.
"""

from __future__ import annotations

from harness.cases import ApiCase

from .semantics import NO_EFBIG, NO_ETIMEDOUT, NO_UDP, TCP_PAIR, UDP_PAIR, Script

READS_NOT_HIDDEN = "FreeBSD does not hide a spliced source from read (5.1)"
OPENBSD_ONLY = "an OpenBSD rule; FreeBSD's answer is checked by its own case"
FREEBSD_ONLY = "a FreeBSD rule; OpenBSD's answer is checked by its own case"
CONNECTING_DRAIN: Script = (
    ("tcp_listen", "L"), ("tcp_connect", "c", "L"), ("accept", "src", "L"), ("tcp_connecting", "drn"),
)
# a full drain (filled before the splice), 3 bytes held back on the source, then its EOF
FULL_DRAIN_EOF: Script = (("sndbuf", "drn", 4096), ("fill", "drn"), ("splice", "src", "drn"), ("send", "c", "abc"),
                          ("queued", "src", 3), ("shutdown", "c", "wr"))
# the source spliced into a drain that is full, so the source keeps data queued
FULL: Script = (("sndbuf", "drn", 4096), ("splice", "src", "drn"), ("fill", "c"), ("queued", "src", 1))


def rule(id: str, script: Script, doc: str, skip: dict[str, str] | None = None,
         expect: dict[str, tuple[str, int]] | None = None, linux_host_differs: str = "") -> ApiCase:
    return ApiCase(id=id, script=script, expect=expect or {"openbsd": ("0", -1)}, doc=doc, skip=skip or {},
                   linux_host_differs=linux_host_differs)


# errata 10: a full drain (filled before the splice), and on the source data with the urgent mark
# inside it (2 bytes before the urgent byte), all within 1024 bytes: the pass may overfill the drain
URGENT_INTO_FULL: Script = (("sndbuf", "drn", 4096), ("fill", "drn"), ("splice", "src", "drn"), ("send", "c", "ab"),
                            ("queued", "src", 2), ("send_oob", "c", "c"))
NO_URGENT_MARK_DISTANCE = (
    "errata 10 is not emulated: the engine gives the 1024 bytes of urgent space only at an inline mark, "
    "not while the mark is ahead within space + 1024 (Linux tells no distance to the mark through the "
    "descriptor's state, and a drain filled on Linux is further over BSD's space than 1024 bytes)")


ERRATA: list[ApiCase] = [
    rule("errata1-eof-drain-connecting",
         (*CONNECTING_DRAIN, ("splice", "src", "drn"), ("shutdown", "c", "wr"), ("readable", "src", True, 10),
          ("error", "src", "0"), ("recv", "src", "")),
         "EOF on an empty source dissolves the splice while the drain is still connecting (errata 1)"),
    rule("errata11-connecting-drain-loses",
         (*CONNECTING_DRAIN, ("send", "c", "abc"), ("queued", "src", 3), ("splice", "src", "drn"),
          ("readable", "src", True, 10), ("error", "src", "ENOTCONN"), ("length", "src", 0)),
         "FreeBSD: data moved into a drain still connecting is lost (ENOTCONN) and the splice ends (errata 11)",
         {"openbsd": FREEBSD_ONLY}),
    rule("errata2-idle-source-wakeup",
         (*TCP_PAIR, ("sndbuf", "drn", 4096), ("splice", "src", "drn", {"idle": 3}), ("fill", "drn"),
          ("send", "c", "a"), ("pause", 1), ("send", "c", "b"), ("pause", 1), ("send", "c", "c"),
          ("pause", 1.5), ("readable", "src", False, 0), ("readable", "src", True, 10),
          ("error", "src", "ETIMEDOUT"), ("length", "src", 0)),
         "data arriving while the drain is full runs a pass that moves nothing and re-arms the idle timer (errata 2)",
         {"freebsd": NO_ETIMEDOUT}),
    rule("errata2-idle-drain-wakeup",
         (*TCP_PAIR, ("sndbuf", "drn", 4096), ("splice", "src", "drn", {"idle": 3}), ("fill", "drn"),
          ("read_some", "far", 65536), ("pause", 1), ("read_some", "far", 65536), ("pause", 1),
          ("read_some", "far", 65536), ("pause", 1.5), ("readable", "src", False, 0),
          ("readable", "src", True, 10), ("error", "src", "ETIMEDOUT")),
         "acknowledgements that free drain space run passes that re-arm the idle timer (errata 2)",
         {"freebsd": NO_ETIMEDOUT}),
    rule("errata3-read-zero-length", (*TCP_PAIR, *FULL, ("read_zero", "src"), ("unsplice", "src")),
         "a zero-length read on a spliced source returns 0 at once (errata 3)"),
    rule("errata3-read-rcvtimeo",
         (*TCP_PAIR, *FULL, ("rcvtimeo", "src", 1), ("read_fails", "src", "EAGAIN"), ("unsplice", "src")),
         "a blocking read on a spliced source honours SO_RCVTIMEO: EWOULDBLOCK when it expires (errata 3)",
         {"freebsd": READS_NOT_HIDDEN}),
    rule("errata3-read-timeout",
         (*TCP_PAIR, *FULL, ("timeout", "src", 1), ("read_fails", "src", "timeout"), ("unsplice", "src")),
         "a read on a spliced source honours Python's socket timeout (errata 3)", {"freebsd": READS_NOT_HIDDEN}),
    rule("errata4-drain-writer-blocked",
         (*TCP_PAIR, ("sndbuf", "drn", 4096), ("splice", "src", "drn"), ("fill", "drn"), ("blocking", "drn"),
          ("writer_start", "drn", 1 << 20), ("writer_blocked", "drn", 0.5),
          ("read_all", "far"), ("writer_blocked", "drn", 1),
          ("unsplice", "src"), ("read_all", "far"), ("writer_done", "drn")),
         "a writer blocked on a spliced drain is not woken by freed space, only by the unsplice (errata 4)"),
    rule("errata5-send-epipe-first",
         (*TCP_PAIR, ("splice", "src", "drn", {"max": 4}), ("send", "c", "abcdef"), ("recv_exact", "far", 4),
          ("readable", "src", True, 10), ("shutdown", "src", "wr"), ("fails", "EPIPE", ["send", "src", "x"]),
          ("error", "src", "EFBIG")),
         "a write on a socket shut for writing is EPIPE before the pending error, which stays (errata 5)",
         {"freebsd": NO_EFBIG}),
    rule("errata6-udp-drain-shut",
         (*UDP_PAIR, ("splice", "src", "drn"), ("shutdown", "drn", "wr"), ("readable", "src", True, 10),
          ("error", "src", "EPIPE"), ("send_datagram", "c", 3), ("recv_datagram", "src", 3), ("length", "src", 0)),
         "shutdown(SHUT_WR) of a UDP drain ends the splice with EPIPE at once; later datagrams stay (errata 6)",
         {"freebsd": NO_UDP}),
    rule("errata7-dup-source-ebusy",
         (*TCP_PAIR, ("dup", "src2", "src"), ("splice", "src", "drn"), ("tcp_connect", "x", "L"),
          ("accept", "y", "L"), ("fails", "EBUSY", ["splice", "src2", "y"])),
         "a second splice of the source through another descriptor is EBUSY (errata 7)"),
    rule("errata7-dup-drain-ebusy",
         (*TCP_PAIR, ("dup", "drn2", "drn"), ("splice", "src", "drn"), ("tcp_connect", "x", "L"),
          ("accept", "y", "L"), ("fails", "EBUSY", ["splice", "y", "drn2"])),
         "a splice into the drain through another descriptor is EBUSY (errata 7)"),
    rule("errata7-dup-unsplice-length",
         (*TCP_PAIR, ("dup", "src2", "src"), ("splice", "src", "drn"), ("send", "c", "hello"),
          ("recv_exact", "far", 5, "hello"), ("length", "src2", 5), ("unsplice", "src2"),
          ("send", "c", "late"), ("recv", "src", "late"), ("readable", "far", False, 1)),
         "through another descriptor the counter reads the same and unsplice works (errata 7)"),
    rule("errata7-dup-read-hidden",
         (*TCP_PAIR, ("dup", "src2", "src"), *FULL, ("nonblocking", "src2"), ("recv_fails", "src2", "EAGAIN"),
          ("readable", "src2", False, 1), ("unsplice", "src"), ("readable", "src2", True, 1)),
         "another descriptor of a spliced source sees it hidden from reads and poll (errata 7)",
         {"freebsd": READS_NOT_HIDDEN}),
    rule("errata8-udp-options-restored",
         (*UDP_PAIR, ("options_save", "src"), ("splice", "src", "drn"), ("send_datagram", "c", 2),
          ("recv_datagram", "far", 2), ("unsplice", "src"), ("options_same", "src"),
          ("send_datagram", "c", 3), ("recv_plain", "src", 3)),
         "after the unsplice a UDP source has its options and gets no control messages it did not ask for (errata 8)",
         {"freebsd": NO_UDP}),
    rule("errata8-tcp-options-restored",
         (*TCP_PAIR, ("options_save", "drn"), ("options_save", "src"), *FULL, ("unsplice", "src"),
          ("options_same", "drn"), ("options_same", "src")),
         "after the unsplice of a full splice, source and drain have their options as before (errata 8)"),
    rule("errata11-option-unbounded", (*TCP_PAIR, ("setopt_padded", "src", "drn", 4096)),
         "an option value over MCLBYTES (2048) is EINVAL on OpenBSD, accepted on FreeBSD (errata 11)",
         expect={"openbsd": ("EINVAL", -1), "freebsd": ("0", -1)}),
    rule("errata11-length-listening", (("tcp_listen", "L"), ("length", "L", 0)),
         "getsockopt(SO_SPLICE) on a listening socket: 0 on OpenBSD, ENOTCONN on FreeBSD (errata 11)",
         expect={"openbsd": ("0", -1), "freebsd": ("ENOTCONN", -1)}),
    rule("errata11-ebusy-zeroes-counter",
         (*TCP_PAIR, ("splice", "src", "drn"), ("send", "c", "hello"), ("recv_exact", "far", 5),
          ("length", "src", 5), ("tcp_connect", "x", "L"), ("accept", "y", "L"),
          ("fails", "EBUSY", ["splice", "src", "y"]), ("length", "src", 0)),
         "FreeBSD: a splice refused with EBUSY still zeroes the live splice's counter (errata 11)",
         {"openbsd": FREEBSD_ONLY}),
    rule("errata11-ebusy-keeps-counter",
         (*TCP_PAIR, ("splice", "src", "drn"), ("send", "c", "hello"), ("recv_exact", "far", 5),
          ("length", "src", 5), ("tcp_connect", "x", "L"), ("accept", "y", "L"),
          ("fails", "EBUSY", ["splice", "src", "y"]), ("length", "src", 5)),
         "OpenBSD: a splice refused with EBUSY leaves the live splice's counter alone (2.1)",
         {"freebsd": OPENBSD_ONLY}),
    rule("errata11-urgent-as-data",
         (*TCP_PAIR, ("oobinline", "src"), ("oobinline", "far"), ("splice", "src", "drn"), ("send", "c", "ab"),
          ("recv_exact", "far", 2, "ab"), ("send_oob", "c", "c"), ("queued", "far", 1), ("atmark", "far", False),
          ("recv_exact", "far", 1, "c"), ("length", "src", 3)),
         "FreeBSD: an inline urgent byte on the source leaves the drain as plain data (errata 11)",
         {"openbsd": FREEBSD_ONLY}),
    rule("errata11-drain-shut-no-error",
         (*TCP_PAIR, ("splice", "src", "drn"), ("shutdown", "drn", "wr"), ("send", "c", "x"),
          ("recv", "src", "x"), ("error", "src", "0")),
         "FreeBSD: a drain shut for writing ends the splice with no error on the source (errata 11)",
         {"openbsd": FREEBSD_ONLY}),
    rule("errata11-eof-full-drain",
         (*TCP_PAIR, *FULL_DRAIN_EOF, ("readable", "src", True, 10), ("error", "src", "0"), ("length", "src", 0),
          ("recv", "src", "abc")),
         "FreeBSD: EOF on the source while the drain is full ends the splice; the held data stays (errata 11)",
         {"openbsd": FREEBSD_ONLY}),
    rule("errata11-eof-full-drain-openbsd",
         (*TCP_PAIR, *FULL_DRAIN_EOF, ("readable", "src", False, 1), ("length", "src", 0), ("unsplice", "src"),
          ("recv", "src", "abc")),
         "OpenBSD: EOF behind data a full drain holds back waits for the data to move (3.6)",
         {"freebsd": OPENBSD_ONLY}),
    rule("errata10-urgent-space-inline",
         (*TCP_PAIR, ("oobinline", "src"), *URGENT_INTO_FULL, ("emptied", "src", 5), ("length", "src", 3)),
         "OpenBSD: urgent data within space + 1024 moves into a full drain, with SO_OOBINLINE (errata 10)",
         {"freebsd": OPENBSD_ONLY}, linux_host_differs=NO_URGENT_MARK_DISTANCE),
    rule("errata10-urgent-space-out-of-line",
         (*TCP_PAIR, *URGENT_INTO_FULL, ("send", "c", "de"), ("emptied", "src", 5), ("length", "src", 4)),
         "OpenBSD: urgent data within space + 1024 moves into a full drain, also without SO_OOBINLINE (errata 10)",
         {"freebsd": OPENBSD_ONLY}, linux_host_differs=NO_URGENT_MARK_DISTANCE),
]
