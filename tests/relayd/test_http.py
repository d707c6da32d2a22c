"""The daemon's HTTP parsing and filter rules, without processes."""

from __future__ import annotations

import pytest

from harness.relayd.config import Rule
from harness.relayd.http import HttpError, apply_rules, chunk_size, header_end, parse_head

pytestmark = pytest.mark.relayd


@pytest.mark.parametrize("line", [b"0x4\r\n", b"+3\r\n", b"-0\r\n", b"foo\r\n", b"dead beef\r\n", b"\r\n"])
def test_invalid_chunk_sizes(line: bytes) -> None:
    """args-http-chunked-invalid: only plain hex digits are a chunk size."""
    with pytest.raises(HttpError, match="invalid chunk size"):
        chunk_size(line)


def test_valid_chunk_sizes() -> None:
    assert chunk_size(b"Ff0\r\n") == 0xFF0
    assert chunk_size(b"4\n") == 4
    assert chunk_size(b"a;name=value\r\n") == 10


def test_header_end_bare_lf_and_crlf() -> None:
    assert header_end(b"GET / HTTP/1.0\nHost: x\n\nbody") == len(b"GET / HTTP/1.0\nHost: x\n\n")
    assert header_end(b"GET / HTTP/1.0\r\nHost: x\r\n\r\nbody") == len(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
    assert header_end(b"GET / HTTP/1.0\r\nHost: x\r\n") is None


@pytest.mark.parametrize(("raw", "reason"), [
    (b"XXX\n\n", "malformed"),
    (b"PUT /3 HTTP/1.1\nXXX\n\n", "malformed"),
    (b"GET /1 HTTP/1.1\nX-Header Client: a\n\n", "malformed"),
    (b"GET /1 HTTP/1.1\nHost: a\nHost: b\n\n", "malformed header"),
    (b"GET /1 HTTP/1.1\nX: a\0b\n\n", "malformed"),
])
def test_malformed_heads(raw: bytes, reason: str) -> None:
    with pytest.raises(HttpError) as info:
        parse_head(raw, request=True)
    assert str(info.value) == reason


def test_rules_last_block_or_pass_decides() -> None:
    head = parse_head(b"GET /query?foo=bar&ok=yes HTTP/1.1\r\nHost: foo.bar\r\n\r\n", request=True)
    rules = (Rule("block", "request"), Rule("block", "request", "query", "ok", log=True),
             Rule("pass", "request", "query", "foo", "bar", log=True))
    items, decision = apply_rules(rules, "request", head)
    assert decision is not None and decision.action == "pass"
    assert items == ["foo: bar"]  # only the deciding rule's log (args-http-expect)


def test_rules_header_log_and_path_block() -> None:
    head = parse_head(b"GET /3 HTTP/1.1\r\nHost: foo.bar\r\n\r\n", request=True)
    rules = (Rule("match", "request", "header", "host", log=True), Rule("block", "request", "path", "/3"),
             Rule("match", "response", "header", "Host", log=True))
    items, decision = apply_rules(rules, "request", head)
    assert items == ["Host: foo.bar"]
    assert decision is not None and decision.action == "block"
    _, none = apply_rules(rules, "request", parse_head(b"GET /4 HTTP/1.1\r\n\r\n", request=True))
    assert none is None
