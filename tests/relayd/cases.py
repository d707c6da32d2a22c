"""The 28 CORE relayd cases (spec/relayd-cases.md 2.9), one RelaydCase per upstream args file.

`spliced` is what the daemon must report per session in splice mode:
(request, response) bytes moved by splicing. It follows from relayd's rules
(section 3): a Content-Length body is spliced with max = its length, a body
without length until close, chunk data chunk by chunk; a Content-Length request
body that arrives before the server is connected is copied; a response without
length (HTTP/1.0, or a 1.1 PUT reply) turns its direction into a raw stream, so
later response heads on that connection are spliced too.
"""

from __future__ import annotations

import re

from harness.relayd.config import RelaydConfig, Rule
from harness.relayd.peer import request_head, response_head
from harness.relayd.run import Peer, RelaydCase

# MD5 of upstream's write_char stream by length (relayd-cases 1.5), copied, not computed.
MD5 = {
    0: "d41d8cd98f00b204e9800998ecf8427e",
    1: "68b329da9893e34099c7d8ad5cb9c940",
    2: "897316929176464ebc9ad085f31e7284",
    3: "0ade138937c4b9cb36a28e2edb6485fc",
    4: "e686f5db1f8610b65f98f3718e1a5b72",
    5: "e5870c1091c20ed693976546d23b4841",
    10: "c47658d102d5b989e0da09ce403f7463",
    251: "bc3a3f39af35fe5b1687903da2b00c7f",
    10000: "fccd8d69acceb0cc35f2fd4e2f6938d3",
    16384: "52afece07e61264c3087ddf52f729376",
}

TCP = RelaydConfig()
HTTP = RelaydConfig(http=True)
LOG_FOO_BAR = (Rule("match", "request", "header", "foo", log=True),
               Rule("match", "response", "header", "bar", log=True))
TIMEOUTS = r"(buffer event|splice) timeout"
DONE = r", (done|last write \(done\))"
PERSISTENT = (251, 16384, 0, 1, 2, 3, 4, 5)


def http(rules: tuple[Rule, ...] = (), session_timeout: float | None = None,
         socket_buffer: int | None = None) -> RelaydConfig:
    return RelaydConfig(http=True, rules=rules, session_timeout=session_timeout,
                        socket_buffer=socket_buffer)


def tcp(session_timeout: float | None = None) -> RelaydConfig:
    return RelaydConfig(session_timeout=session_timeout)


def md5s(lengths: tuple[int, ...]) -> tuple[str, ...]:
    return tuple(MD5[n] for n in lengths)


def lit(text: str) -> str:
    return re.escape(text)


def get_sessions(lengths: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """GET: one persistent 1.1 session, then one 1.0 session per length."""
    return ((0, sum(lengths)), *((0, n) for n in lengths))


def put_sessions(lengths: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """PUT: the first body is read before the connect (copied); 1.0 bodies have no length."""
    later = lengths[1:]
    heads = sum(len(response_head("PUT", "1.1", n)) for n in later)
    return ((sum(later), heads), *((n, 0) for n in lengths))


def head_get_script() -> list[list[object]]:
    return [
        ["send", "HEAD http://foo.bar/64 HTTP/1.1\r\n\r\n"],
        ["response", "HEAD", "1.1", 64],
        ["send", "GET http://foo.bar/64 HTTP/1.1\r\n\r\n"],
        ["response", "GET", "1.1", 64],
    ]


TIMEIN_PIECES = [[5, 2], [4, 0]]  # write 5 bytes 1 s apart, idle 2 s, write 4 more
TIMEOUT_PIECES = [[5, 4], [4, 0]]  # the same with 4 s idle: longer than the 3 s timeout

CHUNKS = ([251, 10000, 10], 1, [2, 3])
CHUNK_LENGTHS = (251, 10000, 10, 1, 2, 3)

RELAYD_CASES: tuple[RelaydCase, ...] = (
    # ---- plain TCP
    RelaydCase(
        id="default", doc="TCP relay, client writes 251 bytes",
        config=TCP, client=Peer("write_char"), server=Peer("read_char"),
        len=251, md5=(MD5[251],), spliced=((251, 0),),
    ),
    RelaydCase(
        id="reverse", doc="TCP relay, server writes 251 bytes to the client",
        config=TCP, client=Peer("read_char"), server=Peer("write_char"),
        len=251, md5=(MD5[251],), spliced=((0, 251),),
    ),
    RelaydCase(
        id="http-tcp", doc="TCP relay carrying an HTTP/1.0 GET",
        config=TCP, client=Peer("http_client"), server=Peer("http_server"),
        len=251, md5=(MD5[251],),
        spliced=((len(request_head("GET", "/251", "1.0")),
                  len(response_head("GET", "1.0", 251)) + 251),),
    ),
    # ---- TCP timeouts
    RelaydCase(
        id="timein", doc="3 s session timeout does not fire within 2 s idle",
        config=tcp(session_timeout=3),
        client=Peer("write_char", {"pieces": TIMEIN_PIECES, "sleep": 1, "errignore": True}, nocheck=True),
        server=Peer("read_char"),
        len=9, relayd_loggrep=((TIMEOUTS, 0),), spliced=((9, 0),),
    ),
    RelaydCase(
        id="timeout", doc="3 s session timeout fires after 4 s idle",
        config=tcp(session_timeout=3),
        client=Peer("write_char", {"pieces": TIMEOUT_PIECES, "sleep": 1, "errignore": True},
                    down="Broken pipe", nocheck=True),
        server=Peer("read_char"),
        len=5, relayd_loggrep=((TIMEOUTS, 1),), spliced=((5, 0),),
    ),
    RelaydCase(
        id="timeput", doc="steady writing for 4 s with a 2 s timeout",
        config=tcp(session_timeout=2),
        client=Peer("write_char", {"len": 5, "sleep": 1}), server=Peer("read_char"),
        len=5, md5=(MD5[5],), relayd_loggrep=((TIMEOUTS, 0),), spliced=((5, 0),),
    ),
    RelaydCase(
        id="timeget", doc="idle client->server direction while server->client moves",
        config=tcp(session_timeout=2),
        client=Peer("read_char"), server=Peer("write_char", {"len": 5, "sleep": 1}),
        len=5, md5=(MD5[5],), relayd_loggrep=((TIMEOUTS, 0),), spliced=((0, 5),),
    ),
    RelaydCase(
        id="timein-http", doc="http relay, slow 1.0 reply with 2 s pause, 3 s timeout",
        config=http(session_timeout=3),
        client=Peer("http_client", {"len": 5}),
        server=Peer("http_server", {"pieces": TIMEIN_PIECES, "sleep": 1, "errignore": True}, nocheck=True),
        len=9, relayd_loggrep=((TIMEOUTS, 0),), spliced=((0, 9),),
    ),
    RelaydCase(
        id="timeout-http", doc="http relay, slow 1.0 reply with 4 s pause, 3 s timeout",
        config=http(session_timeout=3),
        client=Peer("http_client", {"len": 5}),
        server=Peer("http_server", {"pieces": TIMEOUT_PIECES, "sleep": 1, "errignore": True},
                    down="Broken pipe", nocheck=True),
        len=5, relayd_loggrep=((TIMEOUTS, 1),), spliced=((0, 5),),
    ),
    RelaydCase(
        id="timeget-http", doc="TCP relay, HTTP reply of 5 bytes 1 s apart, 2 s timeout",
        config=tcp(session_timeout=2),
        client=Peer("http_client", {"len": 5}), server=Peer("http_server", {"sleep": 1}),
        len=5, md5=(MD5[5],), relayd_loggrep=((TIMEOUTS, 0),),
        spliced=((len(request_head("GET", "/5", "1.0")), len(response_head("GET", "1.0", 5)) + 5),),
    ),
    RelaydCase(
        id="timeput-http", doc="TCP relay, HTTP/1.0 PUT body 5 bytes 1 s apart, 2 s timeout",
        config=tcp(session_timeout=2),
        client=Peer("http_client", {"len": 5, "method": "PUT", "sleep": 1}), server=Peer("http_server"),
        len=5, md5=(MD5[5],), relayd_loggrep=((TIMEOUTS, 0),),
        spliced=((len(request_head("PUT", "/5", "1.0")) + 5, len(response_head("PUT", "1.0", 5))),),
    ),
    # ---- HTTP bodies and persistence
    RelaydCase(
        id="http", doc="HTTP/1.0 GET, reply without length: spliced until close",
        config=HTTP, client=Peer("http_client"), server=Peer("http_server"),
        len=251, md5=(MD5[251],), relayd_loggrep=((DONE, 1),), spliced=((0, 251),),
    ),
    RelaydCase(
        id="http-persistent", doc="8 GETs on one 1.1 connection, then one 1.0 connection each",
        config=http(rules=LOG_FOO_BAR),
        client=Peer("http_client", {"lengths": PERSISTENT}),
        server=Peer("http_server", {"conns": 9}),
        lengths=PERSISTENT * 2, md5=md5s(PERSISTENT * 2),
        relayd_loggrep=((DONE, 9), (r"\[foo|\{bar", 0), (r", done, GET(; GET){7};$", 1)),
        spliced=get_sessions(PERSISTENT),
    ),
    RelaydCase(
        id="http-put", doc="8 PUTs on one 1.1 connection, then one 1.0 connection each",
        config=http(rules=LOG_FOO_BAR),
        client=Peer("http_client", {"lengths": PERSISTENT, "method": "PUT"}),
        server=Peer("http_server", {"conns": 9}),
        lengths=PERSISTENT * 2, md5=md5s(PERSISTENT * 2),
        relayd_loggrep=((DONE, 9),), spliced=put_sessions(PERSISTENT),
    ),
    RelaydCase(
        id="http-contentlength", doc="response Content-Length logged for every persistent reply",
        config=http(rules=(Rule("match", "response", "header", "Content-Length", log=True),)),
        client=Peer("http_client", {"lengths": (1, 2, 0, 3, 4)}),
        server=Peer("http_server", {"conns": 6}),
        lengths=(1, 2, 0, 3, 4) * 2, md5=md5s((1, 2, 0, 3, 4) * 2),
        relayd_loggrep=(
            *((lit(f"{{Content-Length: {n}}}"), None) for n in (1, 2, 0, 3, 4)),
            (lit(", done, GET {Content-Length: 1}; GET {Content-Length: 2}; GET {Content-Length: 0};"
                 " GET {Content-Length: 3}; GET {Content-Length: 4};"), 1),
        ),
        spliced=get_sessions((1, 2, 0, 3, 4)),
    ),
    RelaydCase(
        id="http-multi", doc="50 GETs of 1 byte, persistent and one by one",
        config=HTTP,
        client=Peer("http_client", {"lengths": (1,) * 50}),
        server=Peer("http_server", {"conns": 51}),
        lengths=(1,) * 100, md5=md5s((1,) * 100),
        relayd_loggrep=((DONE + ", GET", 51), (r", done, GET(; GET){49};$", 1)),
        spliced=get_sessions((1,) * 50),
    ),
    RelaydCase(
        id="http-put-multi", doc="50 PUTs of 1 byte, persistent and one by one",
        config=HTTP,
        client=Peer("http_client", {"lengths": (1,) * 50, "method": "PUT"}),
        server=Peer("http_server", {"conns": 51}),
        lengths=(1,) * 100, md5=md5s((1,) * 100),
        relayd_loggrep=((DONE + ", PUT", 51),), spliced=put_sessions((1,) * 50),
    ),
    RelaydCase(
        id="http-head-get", doc="HEAD reply with Content-Length 64 has no body; GET follows",
        config=http(rules=(Rule("match", "request", "path", "*", log=True),)),
        client=Peer("script", {"script": head_get_script()}),
        server=Peer("http_server"),
        lengths=(64,),
        relayd_loggrep=((lit(", done, [http://foo.bar/64] HEAD; [http://foo.bar/64] GET"), 1),),
        spliced=((0, 64),),
    ),
    # ---- chunked
    RelaydCase(
        id="http-chunked", doc="chunked, Content-Length and chunked replies on one 1.1 connection",
        config=http(rules=(Rule("match", "request", "header", "foo", log=True),
                           Rule("match", "response", "header", "Transfer-Encoding", log=True))),
        client=Peer("http_client", {"lengths": CHUNKS, "http_vers": ["1.1"]}),
        server=Peer("http_server"),
        lengths=CHUNK_LENGTHS, md5=md5s(CHUNK_LENGTHS),
        relayd_loggrep=((lit("{Transfer-Encoding: chunked}"), 1), (lit("[(null)]"), 0)),
        spliced=((0, sum(CHUNK_LENGTHS)),),
    ),
    RelaydCase(
        id="http-chunked-put", doc="chunked and Content-Length PUT bodies on one 1.1 connection",
        config=http(rules=(Rule("match", "request", "header", "Transfer-Encoding", log=True),)),
        client=Peer("http_client", {"lengths": CHUNKS, "http_vers": ["1.1"], "method": "PUT"}),
        server=Peer("http_server"),
        lengths=CHUNK_LENGTHS, md5=md5s(CHUNK_LENGTHS),
        relayd_loggrep=((lit("[Transfer-Encoding: chunked]"), 1), (lit("[(null)]"), 0)),
        spliced=((sum(CHUNK_LENGTHS), 2 * len(response_head("PUT", "1.1", 1))),),
    ),
    RelaydCase(
        id="http-chunked-callback", doc="bad second chunk size: first chunk relayed, then closed",
        config=http(rules=LOG_FOO_BAR),
        client=Peer("script", {"errignore": True, "script": [
            ["send", "PUT /4/3 HTTP/1.1\nHost: foo.bar\nTransfer-Encoding: chunked\n\n"],
            ["signal", "server Accepted"],
            ["send", "4\n123\n\nXXX\n3\n12\n\n0\n\n"],
            ["log", "LEN: 4"], ["log", "LEN: 3"],
            ["eof"],
        ]}, down="Shutdown|Error ignored"),
        server=Peer("http_server", {"errignore": True}, down="Server missing chunk size", nocheck=True),
        signals=(("server", "^Accepted$", "client"),),
        lengths=(4, 3), relayd_loggrep=((r", invalid chunk size, PUT", 1),),
        spliced=((4, 0),),
    ),
    # ---- filters, late connect
    RelaydCase(
        id="http-filter", doc="path rule that does not match; connect after the head",
        config=http(rules=(Rule("match", "request", "path", "/2"),)),
        client=Peer("http_client", {"len": 1}), server=Peer("http_server"),
        len=1, md5=(MD5[1],), relayd_loggrep=((DONE, 1),), spliced=((0, 1),),
    ),
    RelaydCase(
        id="http-filter-put", doc="HTTP/1.0 PUT without length: body spliced until close",
        config=http(rules=(Rule("block", "request", "path", "/2"),)),
        client=Peer("http_client", {"len": 1, "method": "PUT"}), server=Peer("http_server"),
        len=1, md5=(MD5[1],), relayd_loggrep=((DONE, 1),), spliced=((1, 0),),
    ),
    RelaydCase(
        id="http-filter-put-contentlength", doc="HTTP/1.0 PUT with Content-Length: body read before the connect",
        config=http(rules=(Rule("match", "request", "path", "/2"),)),
        client=Peer("http_client", {"len": 1, "method": "PUT", "header": {"Content-Length": "1"}}),
        server=Peer("http_server"),
        len=1, md5=(MD5[1],), relayd_loggrep=((DONE, 1),), spliced=((0, 0),),
    ),
    RelaydCase(
        id="http-filter-block", doc="block /3: the connection is closed without a reply",
        config=http(rules=(Rule("block", "request", "path", "/3"),)),
        client=Peer("http_client", {"lengths": (1, 2, 0, 3)},
                    loggrep=(("Client missing http 3 response", 2),)),
        server=Peer("http_server", {"conns": 4}),
        lengths=(1, 2, 0, 1, 2, 0), md5=md5s((1, 2, 0, 1, 2, 0)),
        relayd_loggrep=((r", Forbidden, GET", 2),),
        spliced=((0, 3), (0, 1), (0, 2), (0, 0), (0, 0)),
    ),
    RelaydCase(
        id="http-filter-persistent", doc="block /2 in the middle of a persistent connection",
        config=http(rules=(Rule("block", "request", "path", "/2"),)),
        client=Peer("http_client", {"lengths": PERSISTENT},
                    loggrep=(("Client missing http 2 response", 2),)),
        server=Peer("http_server", {"conns": 9}),
        lengths=(251, 16384, 0, 1, 3, 4, 5) * 2, md5=md5s((251, 16384, 0, 1, 3, 4, 5) * 2),
        relayd_loggrep=((r", Forbidden, GET", 2), (DONE, 8)),
        spliced=((0, 251 + 16384 + 0 + 1), (0, 3 + 4 + 5),
                 *((0, n if n != 2 else 0) for n in PERSISTENT)),
    ),
    # ---- errors after a body
    RelaydCase(
        id="http-callback", doc="bad request line after a buffered PUT body: no connect at all",
        config=http(rules=LOG_FOO_BAR),
        client=Peer("script", {"errignore": True, "script": [
            ["send", "PUT /4 HTTP/1.1\nHost: foo.bar\nContent-Length: 4\n\n123\n"
                     "XXX\nPUT /3 HTTP/1.1\nHost: foo.bar\nContent-Length: 3\n\n12\n"],
            ["eof"],
        ]}, down="Shutdown|Error ignored", nocheck=True),
        server=None,
        relayd_loggrep=((r", malformed, PUT", 1),), spliced=((0, 0),),
    ),
    # ---- flow control
    RelaydCase(
        id="http-slow-consumer", doc="a sleeping client makes the server block, not relayd buffer",
        config=http(socket_buffer=1024, rules=(Rule("match", "request", "header", log=True),
                                               Rule("match", "request", "path", log=True))),
        client=Peer("slow_consumer", {"len": 2**21, "max": 100, "rcvbuf": 2**12}, nocheck=True),
        server=Peer("http_server", {"fast": True, "sndbuf": 2**12, "sndtimeo": 2},
                    loggrep=(("blocked write", None),)),
        signals=(("server", "blocked write", "client"),),
        lengths=(2**21,), relayd_loggrep=((lit("[Host: foo.bar] [/2097152] GET"), 1),),
        spliced=((0, 2**21),),
    ),
)
