"""HTTP message heads as relayd parses them, and the filter rules applied to them.

Stdlib only.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

from .config import Rule

BODYLESS_REQUESTS = ("GET", "HEAD", "COPY", "MOVE")
REQUEST_LINE = re.compile(r"([A-Z]+) (\S+) HTTP/(1\.[01])")
STATUS_LINE = re.compile(r"HTTP/(1\.[01]) ([0-9]{3})(?: (.*))?")
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class HttpError(Exception):
    """A message relayd refuses; str() is the close reason (malformed, invalid, ...)."""


@dataclass
class Head:
    """One request or response head: start line and headers in order."""

    start: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    method: str = ""  # requests
    target: str = ""
    version: str = ""
    status: int = 0  # responses

    def get(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def remove(self, name: str) -> None:
        self.headers = [(k, v) for k, v in self.headers if k.lower() != name.lower()]

    def serialize(self) -> bytes:
        lines = [self.start, *(f"{k}: {v}" for k, v in self.headers), "", ""]
        return "\r\n".join(lines).encode("latin-1")

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str | None:
        return self.target.split("?", 1)[1] if "?" in self.target else None

    @property
    def host(self) -> str:
        m = re.match(r"[a-zA-Z]+://([^/]*)", self.target)
        return m.group(1) if m else (self.get("Host") or "")


def header_end(data: bytes, start: int = 0) -> int | None:
    """Index just past the empty line that ends a head (CRLF or bare LF lines)."""
    if start == 0 and (data.startswith(b"\n") or data.startswith(b"\r\n")):
        return data.index(b"\n") + 1
    ends = [i for i in (data.find(b"\n\r\n", start), data.find(b"\n\n", start)) if i >= 0]
    if not ends:
        return None
    i = min(ends)
    return i + (3 if data[i : i + 3] == b"\n\r\n" else 2)


def parse_head(raw: bytes, request: bool) -> Head:
    if b"\0" in raw:
        raise HttpError("malformed")
    text = raw.decode("latin-1")
    lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
    while lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise HttpError("malformed")
    start, rest = lines[0], lines[1:]
    head = Head(start=start)
    if request:
        m = REQUEST_LINE.fullmatch(start)
        if not m:
            raise HttpError("malformed")
        head.method, head.target, head.version = m.group(1), m.group(2), m.group(3)
    else:
        m = STATUS_LINE.fullmatch(start)
        if not m:
            raise HttpError("malformed")
        head.version, head.status = m.group(1), int(m.group(2))
    for line in rest:
        if line[:1] in (" ", "\t") or ":" not in line:
            raise HttpError("malformed")
        name, _, value = line.partition(":")
        if not HEADER_NAME.fullmatch(name):
            raise HttpError("malformed")
        head.headers.append((name, value.strip()))
    if request:
        hosts = [v for k, v in head.headers if k.lower() == "host"]
        if len(hosts) > 1:
            raise HttpError("malformed header")
    return head


def content_length(head: Head) -> int | None:
    value = head.get("Content-Length")
    if value is None:
        return None
    if not re.fullmatch(r"[0-9]{1,18}", value):
        raise HttpError("invalid")
    return int(value)


def chunked(head: Head) -> bool:
    value = head.get("Transfer-Encoding")
    if value is None:
        return False
    if value.lower() != "chunked":
        raise HttpError("malformed")
    return True


def chunk_size(line: bytes) -> int:
    """The value of a chunk-size line (extensions after ';' ignored); HttpError if invalid."""
    text = line.rstrip(b"\r\n").split(b";", 1)[0].strip()
    if not re.fullmatch(rb"[0-9A-Fa-f]{1,15}", text):
        raise HttpError("invalid chunk size")
    return int(text, 16)


# ---- filter rules


def _glob(pattern: str | None, text: str, fold: bool = False) -> bool:
    if pattern is None:
        return True
    if fold:
        return fnmatch.fnmatchcase(text.lower(), pattern.lower())
    return fnmatch.fnmatchcase(text, pattern)


def _pairs(text: str | None, sep: str) -> list[tuple[str, str]]:
    out = []
    for part in (text or "").split(sep):
        part = part.strip()
        if part:
            name, _, value = part.partition("=")
            out.append((name.strip(), value.strip()))
    return out


def rule_matches(rule: Rule, head: Head) -> tuple[bool, list[str]]:
    """Whether a rule matches a head, and the log items it would write."""
    if rule.kind is None:
        return True, []
    if rule.kind == "header":
        found = [(k, v) for k, v in head.headers if _glob(rule.key, k, fold=True) and _glob(rule.value, v)]
        return bool(found), [f"{k}: {v}" for k, v in found]
    if rule.kind == "path":
        if not _glob(rule.key, head.path) or (rule.value is not None and not _glob(rule.value, head.query or "")):
            return False, []
        return True, [f"{head.path}: {head.query}" if head.query is not None else head.path]
    if rule.kind == "url":
        url = head.host + ("/" + head.path.split("/", 3)[3] if "://" in head.path else head.path)
        prefixes = [url] + [url[: i + 1] for i, c in enumerate(url) if c == "/"]
        hit = next((p for p in prefixes if _glob(rule.key, p, fold=True)), None)
        return hit is not None, [hit] if hit is not None else []
    if rule.kind == "cookie":
        found = [(k, v) for k, v in _pairs(head.get("Cookie"), ";")
                 if _glob(rule.key, k, fold=True) and _glob(rule.value, v, fold=True)]
        return bool(found), [f"Cookie: {k}={v}" for k, v in found]
    if rule.kind == "query":
        found = [(k, v) for k, v in _pairs(head.query, "&") if _glob(rule.key, k) and _glob(rule.value, v)]
        return bool(found), [f"{k}: {v}" for k, v in found]
    return False, []


def apply_rules(rules: tuple[Rule, ...], direction: str, head: Head) -> tuple[list[str], Rule | None]:
    """Run the rules for one head: the log items written, and the deciding block/pass rule.

    match rules act whenever they match; of the block/pass rules the last one that
    matches decides (the first, if it is quick), and only its own log applies.
    """
    items: list[str] = []
    decision: tuple[Rule, list[str]] | None = None
    for rule in rules:
        if (rule.direction or "request") != direction:
            continue
        matched, logged = rule_matches(rule, head)
        if not matched:
            continue
        if rule.action == "match":
            if rule.log:
                items += logged
            continue
        decision = (rule, logged)
        if rule.quick:
            break
    if decision is not None and decision[0].log:
        items += decision[1]
    return items, decision[0] if decision else None
