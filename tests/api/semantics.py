"""Data-movement cases of semantics appendix B: what a splice does with bytes, as API scripts.

Topology of a TCP script: c -> src (the source), drn (the drain) -> far. Durations are
scenario seconds, under the time scale. Each script succeeds as a whole, or names the
operation whose expectation failed.
"""

from __future__ import annotations

from typing import Any

from harness.cases import ApiCase

Script = tuple[tuple[Any, ...], ...]

TCP_PAIR: Script = (
    ("tcp_listen", "L"),
    ("tcp_connect", "c", "L"), ("accept", "src", "L"),
    ("tcp_connect", "drn", "L"), ("accept", "far", "L"),
)
UDP_PAIR: Script = (
    ("udp_bind", "src"), ("udp_connect", "c", "src"),
    ("udp_bind", "far"), ("udp_connect", "drn", "far"),
)
NO_EFBIG = "FreeBSD reports no EFBIG: reaching max just unsplices (semantics 5.1)"
NO_ETIMEDOUT = "FreeBSD reports no ETIMEDOUT and its idle time is one-shot (semantics 5.1)"
NO_UDP = "FreeBSD splices TCP only (semantics 5.1)"


def ok(id: str, script: Script, doc: str, skip: dict[str, str] | None = None) -> ApiCase:
    return ApiCase(id=id, script=script, expect={"openbsd": ("0", -1)}, doc=doc, skip=skip or {})


SEMANTICS: list[ApiCase] = [
    ok("move-counter", (*TCP_PAIR, ("splice", "src", "drn"), ("send", "c", "hello world\n"),
                        ("recv_exact", "far", 12, "hello world\n"), ("length", "src", 12), ("length", "drn", 0)),
       "bytes arrive intact; the counter equals the bytes moved; a drain's counter stays 0"),
    ok("prequeued", (*TCP_PAIR, ("send", "c", "abc\n"), ("queued", "src", 4), ("splice", "src", "drn"),
                     ("length", "src", 4), ("recv_exact", "far", 4, "abc\n")),
       "data queued before the splice is moved inside setsockopt (3.2)"),
    ok("max-efbig", (*TCP_PAIR, ("splice", "src", "drn", {"max": 5}), ("send", "c", "0123456789"),
                     ("recv_exact", "far", 5, "01234"), ("readable", "src", True, 10),
                     ("error", "src", "EFBIG"), ("length", "src", 5), ("recv_exact", "src", 5, "56789")),
       "exactly max bytes move, EFBIG is set once, the rest stays readable on the source (3.4)",
       {"freebsd": NO_EFBIG}),
    ok("max-exact-then-more", (*TCP_PAIR, ("splice", "src", "drn", {"max": 4}), ("send", "c", "abcd"),
                               ("recv_exact", "far", 4, "abcd"), ("readable", "src", True, 10),
                               ("error", "src", "EFBIG"), ("send", "c", "e"), ("recv_exact", "src", 1, "e")),
       "reaching max exactly dissolves the splice; later data is the application's",
       {"freebsd": NO_EFBIG}),
    ok("idle-etimedout", (*TCP_PAIR, ("splice", "src", "drn", {"idle": 2}), ("readable", "src", False, 1),
                          ("readable", "src", True, 5), ("error", "src", "ETIMEDOUT")),
       "silence for the idle time dissolves the splice with ETIMEDOUT (3.7)", {"freebsd": NO_ETIMEDOUT}),
    ok("idle-trickle", (*TCP_PAIR, ("splice", "src", "drn", {"idle": 2}), ("send", "c", "a"), ("pause", 1),
                        ("send", "c", "b"), ("pause", 1), ("send", "c", "c"), ("pause", 1),
                        ("readable", "src", False, 0), ("recv_exact", "far", 3, "abc"), ("unsplice", "src")),
       "every move restarts the idle timer (3.7)", {"freebsd": NO_ETIMEDOUT}),
    ok("eof", (*TCP_PAIR, ("splice", "src", "drn"), ("send", "c", "xyz"), ("shutdown", "c", "wr"),
               ("recv_exact", "far", 3, "xyz"), ("readable", "src", True, 10), ("error", "src", "0"),
               ("recv", "src", ""), ("readable", "far", False, 1)),
       "EOF dissolves the splice without error; the drain's peer sees no EOF (3.6)"),
    ok("drain-shutdown-epipe", (*TCP_PAIR, ("splice", "src", "drn"), ("shutdown", "drn", "wr"),
                                ("readable", "src", True, 10), ("error", "src", "EPIPE")),
       "a drain that cannot send ends the splice with EPIPE (3.6)", {"freebsd": "FreeBSD stores no error (5.1)"}),
    ok("spliced-source-hidden", (*TCP_PAIR, ("sndbuf", "drn", 4096), ("splice", "src", "drn"), ("fill", "c"),
                                 ("queued", "src", 1), ("nonblocking", "src"), ("recv_fails", "src", "EAGAIN"),
                                 ("readable", "src", False, 1), ("unsplice", "src"), ("readable", "src", True, 1)),
       "a spliced source is not readable and a non-blocking read gives EAGAIN (3.9)",
       {"freebsd": "FreeBSD does not hide a spliced source from read (5.1)"}),
    ok("unsplice-then-data", (*TCP_PAIR, ("splice", "src", "drn"), ("unsplice", "src"), ("error", "src", "0"),
                              ("send", "c", "late\n"), ("recv", "src", "late\n"), ("readable", "far", False, 1)),
       "after an unsplice data stays with the application; no error is set (3.10)"),
    ok("close-drain", (*TCP_PAIR, ("splice", "src", "drn"), ("close", "drn"), ("error", "src", ["0", "EPIPE"]),
                       ("fails", "EPROTO", ["unsplice", "src"]), ("send", "c", "after\n"),
                       ("recv", "src", "after\n")),
       "closing the drain dissolves the splice; the source's error is 0 or EPIPE (3.6)",
       {"freebsd": "FreeBSD ends the splice only at the next transfer after a close (5.1)"}),
    ok("resplice-resets-counter", (*TCP_PAIR, ("splice", "src", "drn"), ("send", "c", "12345"),
                                   ("recv_exact", "far", 5), ("unsplice", "src"), ("length", "src", 5),
                                   ("splice", "src", "drn"), ("length", "src", 0)),
       "the counter survives an unsplice and restarts at the next splice (1.4)"),
    ok("oobinline-urgent", (*TCP_PAIR, ("oobinline", "src"), ("oobinline", "far"), ("splice", "src", "drn"),
                            ("send", "c", "ab"), ("recv_exact", "far", 2, "ab"), ("send_oob", "c", "c"),
                            ("queued", "far", 1), ("atmark", "far", True), ("recv_exact", "far", 1, "c"),
                            ("length", "src", 3)),
       "with SO_OOBINLINE on the source the urgent byte is forwarded as urgent (3.5)",
       {"freebsd": "FreeBSD forwards inline urgent data as ordinary data (5.1)"}),
    ok("udp-max-efbig", (*UDP_PAIR, ("splice", "src", "drn", {"max": 4}), ("send_datagram", "c", 1),
                         ("send_datagram", "c", 3), ("recv_datagram", "far", 1), ("recv_datagram", "far", 3),
                         ("readable", "src", True, 10), ("error", "src", "EFBIG"), ("length", "src", 4)),
       "a datagram that hits max exactly gives EFBIG (3.4)", {"freebsd": NO_UDP}),
    ok("udp-max-nosplit", (*UDP_PAIR, ("splice", "src", "drn", {"max": 2}), ("send_datagram", "c", 1),
                           ("send_datagram", "c", 3), ("recv_datagram", "far", 1), ("readable", "src", True, 10),
                           ("error", "src", "0"), ("length", "src", 1), ("recv_datagram", "src", 3)),
       "a datagram that does not fit is not split and raises no error; it stays on the source (3.4)",
       {"freebsd": NO_UDP}),
    ok("udp-emsgsize", (*UDP_PAIR, ("sndbuf", "drn", 2048), ("splice", "src", "drn"), ("send_datagram", "c", 1),
                        ("send_datagram", "c", 3000), ("send_datagram", "c", 2), ("recv_datagram", "far", 1),
                        ("readable", "src", True, 10), ("error", "src", "EMSGSIZE"),
                        ("recv_datagram", "src", 3000), ("recv_datagram", "src", 2)),
       "a datagram larger than the drain's send buffer ends the splice with EMSGSIZE and stays (4)",
       {"freebsd": NO_UDP}),
    ok("udp-zero-length", (*UDP_PAIR, ("splice", "src", "drn"), ("send_datagram", "c", 0),
                           ("send_datagram", "c", 2), ("recv_datagram", "far", 0), ("recv_datagram", "far", 2),
                           ("length", "src", 2)),
       "a zero-length datagram is forwarded as one (udp/args-zero)", {"freebsd": NO_UDP}),
]
