"""The conservation check: where upstream checks nothing, no byte is lost, reordered or sent twice.

The client logs SENT (what its kernel took), the relay its source's account in
source order (harness.ledger: SOURCE lines), the server LEN and MD5 of what it
got. Walking the account over the client's stream, each piece the relay read
and kept, and what was left on the source, must be the stream's bytes at that
offset; the server must have got exactly the forwarded pieces, joined, when it
saw an EOF; and the account can never pass what was sent ("exact": it adds up
to it, and the source ended with EOF).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from .cases import Case
from .checks import CaseFailure, first
from .steps import CYCLE


def stream_slice(offset: int, length: int, total: int) -> bytes:
    """Bytes [offset, offset + length) of write_stream's stream of `total` bytes."""
    start = offset % len(CYCLE)
    data = (CYCLE * ((start + length) // len(CYCLE) + 1))[start : start + length]
    if length and offset + length == total:
        data = data[:-1] + b"\n"  # the stream ends with a newline
    return data


def md5_of(offset: int, length: int, total: int) -> str:
    md5 = hashlib.md5()
    step = 1 << 20
    for at in range(offset, offset + length, step):
        md5.update(stream_slice(at, min(step, offset + length - at), total))
    return md5.hexdigest()


def _entries(relay: Sequence[str]) -> list[list[str]]:
    return [line.split(":", 1)[1].split() for line in relay if line.startswith("SOURCE:")]


def check_conservation(case: Case, logs: Mapping[str, Sequence[str]]) -> None:
    """Raise CaseFailure when the relay's account of its source does not add up."""
    where = f"case {case.id}: conservation"
    sent_line = first(logs.get("client", []), "SENT:")
    entries = _entries(logs.get("relay", []))
    killed = case.client.alarm is not None  # a client that dies by SIGALRM logs nothing at its end
    if (sent_line is None and not killed) or not entries:
        missing = "relay: no 'SOURCE:' lines" if entries == [] else "client: no 'SENT:' line"
        raise CaseFailure(f"{where}: {missing}")
    if sent_line is None:
        sent_n, total = None, case.client.len or 251
    else:
        sent, _, total_text = sent_line.partition(" of ")
        sent_n, total = int(sent), int(total_text)
    problems: list[str] = []
    offset: int | None = 0  # None: from here on the source offset is unknown
    forwarded = hashlib.md5()
    forwarded_n: int | None = 0  # None: unknown
    left_how = None
    for entry in entries:
        kind, args = entry[0], entry[1:]
        if kind in ("spliced", "copied"):
            if args[0] == "?":
                offset = forwarded_n = None  # the source was closed under the splice
                continue
            n = int(args[0])
            if forwarded_n is not None:
                forwarded_n += n
            if offset is not None:
                forwarded.update(stream_slice(offset, n, total))
                offset += n
        elif kind in ("read", "left"):
            if args[0] == "?":
                offset = None
                continue
            n, digest = int(args[0]), args[1]
            if kind == "left":
                left_how = args[2]
            if offset is not None:
                if digest != md5_of(offset, n, total):
                    problems.append(f"relay: the {n} bytes it {'found left' if kind == 'left' else 'read'} "
                                    f"on the source at offset {offset} are not the client's bytes there")
                offset += n
        elif kind == "flushed":
            offset = None  # shutdown(SHUT_RD) discarded an unknown amount
    if offset is not None and sent_n is not None and offset > sent_n:
        problems.append(f"relay: its source account covers {offset} bytes, the client's kernel took only {sent_n}")
    if case.conserve == "exact":
        if offset is None:
            problems.append("relay: the account has a gap, an exact case must have none")
        elif sent_n is None:
            problems.append("client: no 'SENT:' line, an exact case needs one")
        elif offset != sent_n:
            problems.append(f"relay: the account covers {offset} bytes, the client's kernel took {sent_n}: "
                            f"{sent_n - offset} lost")
        if left_how != "eof":
            problems.append(f"relay: the source ended '{left_how}', an exact case ends with EOF")
    server = logs.get("server", [])
    got = first(server, "LEN:")
    if got is not None and forwarded_n is not None:
        if int(got) != forwarded_n:
            problems.append(f"server: got {got} bytes with EOF, the relay forwarded {forwarded_n}")
        elif offset is not None and first(server, "MD5:") != forwarded.hexdigest():
            problems.append(f"server: the {got} bytes it got are not the source's forwarded bytes in order")
    if problems:
        raise CaseFailure(f"{where} (client sent {sent_n} of {total}):\n  " + "\n  ".join(problems))
