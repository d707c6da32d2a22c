"""A relayd configuration as data, its relayd.conf text, and a parser for the supported subset.

The grammar accepted by `parse` (one statement per line, `#` starts a comment,
strings may be double-quoted):

    log connection | log state changes | log host checks | log all
    prefork N
    [http] protocol NAME {
        tcp splice | tcp no splice | tcp nodelay | tcp socket buffer N
        return error
        (match|block|pass) [quick] [request|response]
            [header|path|url|cookie|query] [log] [KEY] [value VALUE] [log]
    }
    relay NAME {
        listen on ADDRESS port PORT
        forward to ADDRESS port PORT
        protocol NAME
        session timeout SECONDS
    }

Anything else is a ConfigError naming the line. Stdlib only.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field, replace

ACTIONS = ("match", "block", "pass")
DIRECTIONS = ("request", "response")
KINDS = ("header", "path", "url", "cookie", "query")


class ConfigError(ValueError):
    """A configuration line outside the supported grammar; str() is one line naming it."""


@dataclass(frozen=True)
class Rule:
    """One filter rule of a protocol block."""

    action: str  # match, block, pass
    direction: str | None = None  # request, response; None: both
    kind: str | None = None  # header, path, url, cookie, query; None: every message
    key: str | None = None  # glob for the name (header, cookie, query) or the path / url
    value: str | None = None  # glob for the value
    log: bool = False
    quick: bool = False

    def render(self) -> str:
        words = [self.action]
        if self.quick:
            words.append("quick")
        if self.direction:
            words.append(self.direction)
        if self.kind:
            words.append(self.kind)
        if self.log:
            words.append("log")
        if self.key is not None:
            words.append(_quote(self.key))
        if self.value is not None:
            words += ["value", _quote(self.value)]
        return " ".join(words)


@dataclass(frozen=True)
class RelaydConfig:
    """What a relayd case configures: the protocol block and the relay block."""

    name: str = "test"
    http: bool = False
    splice: bool = True
    rules: tuple[Rule, ...] = ()
    return_error: bool = False
    socket_buffer: int | None = None
    session_timeout: float | None = None
    listen: tuple[str, int] = ("127.0.0.1", 0)
    forward: tuple[str, int] = ("127.0.0.1", 0)
    nodelay: bool = True
    logs: tuple[str, ...] = field(default=("state changes", "host checks", "connection"))
    prefork: int | None = 1
    relay_label: str = ""  # the relay's own name when it is not relay-NAME (hand-written files)

    def with_mode(self, mode: str) -> RelaydConfig:
        if mode not in ("copy", "splice"):
            raise ValueError(f"unknown relay mode {mode!r}; valid: copy, splice")
        return replace(self, splice=mode == "splice")

    @property
    def protocol_name(self) -> str:
        return f"proto-{self.name[:25]}"

    @property
    def relay_name(self) -> str:
        return self.relay_label or f"relay-{self.name}"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(cfg: RelaydConfig) -> str:
    """The relayd.conf text for a configuration (what the real relayd would run)."""
    out = [f"log {what}" for what in cfg.logs]
    if cfg.prefork is not None:
        out.append(f"prefork {cfg.prefork}")
    out.append("")
    out.append(f"{'http ' if cfg.http else ''}protocol {_quote(cfg.protocol_name)} {{")
    out.append("\ttcp splice" if cfg.splice else "\ttcp no splice")
    if cfg.socket_buffer is not None:
        out.append(f"\ttcp socket buffer {cfg.socket_buffer}")
    if cfg.return_error:
        out.append("\treturn error")
    out += [f"\t{rule.render()}" for rule in cfg.rules]
    if cfg.nodelay:
        out.append("\ttcp nodelay")
    out.append("}")
    out.append("")
    out.append(f"relay {_quote(cfg.relay_name)} {{")
    out.append(f"\tlisten on {cfg.listen[0]} port {cfg.listen[1]}")
    out.append(f"\tforward to {cfg.forward[0]} port {cfg.forward[1]}")
    out.append(f"\tprotocol {_quote(cfg.protocol_name)}")
    if cfg.session_timeout is not None:
        out.append(f"\tsession timeout {cfg.session_timeout:g}")
    out.append("}")
    return "\n".join(out) + "\n"


def _words(line: str, lineno: int, path: str) -> list[str]:
    try:
        lexer = shlex.shlex(line, posix=True, punctuation_chars="{}")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        return list(lexer)
    except ValueError as e:
        raise ConfigError(f"{path}:{lineno}: {e}: {line.strip()}") from None


def _number(word: str, what: str, err: ConfigError) -> int:
    if not re.fullmatch(r"[0-9]+", word):
        raise err
    return int(word)


def parse_rule(words: list[str]) -> Rule | None:
    """A filter rule from its words, or None when they are not one."""
    if not words or words[0] not in ACTIONS:
        return None
    action, rest = words[0], words[1:]
    quick = bool(rest) and rest[0] == "quick"
    if quick:
        rest = rest[1:]
    direction = rest.pop(0) if rest and rest[0] in DIRECTIONS else None
    kind = rest.pop(0) if rest and rest[0] in KINDS else None
    log = False
    key = value = None
    while rest:
        word = rest.pop(0)
        if word == "log" and not log:
            log = True
        elif word == "value" and not rest:
            return None
        elif word == "value" and rest and kind is not None and value is None:
            value = rest.pop(0)
        elif kind is not None and key is None and value is None:
            key = word
        else:
            return None
    return Rule(action=action, direction=direction, kind=kind, key=key, value=value, log=log, quick=quick)


def parse(text: str, path: str = "relayd.conf") -> RelaydConfig:
    """Parse the supported subset; a line outside it raises ConfigError naming the line."""
    cfg = RelaydConfig(logs=(), prefork=None, nodelay=False)
    block: str | None = None
    protocols: dict[str, RelaydConfig] = {}
    current_proto: RelaydConfig | None = None
    current_proto_name = ""
    relay_proto: str | None = None
    relay_name: str | None = None
    listen: tuple[str, int] | None = None
    forward: tuple[str, int] | None = None
    timeout: float | None = None
    for lineno, line in enumerate(text.splitlines(), 1):
        words = _words(line, lineno, path)
        if not words:
            continue
        bad = ConfigError(f"{path}:{lineno}: syntax error: {line.strip()}")
        if block is None:
            if words[0] == "log" and len(words) >= 2:
                what = " ".join(words[1:])
                if what not in ("connection", "state changes", "host checks", "all"):
                    raise bad
                cfg = replace(cfg, logs=(*cfg.logs, what))
            elif words[0] == "prefork" and len(words) == 2:
                cfg = replace(cfg, prefork=_number(words[1], "prefork", bad))
            elif words[-1] == "{" and words[:-2] in (["protocol"], ["http", "protocol"]) and len(words) >= 3:
                if words[0] not in ("protocol", "http"):
                    raise ConfigError(f"{path}:{lineno}: invalid protocol type: {words[0]}")
                block = "protocol"
                current_proto_name = words[-2]
                current_proto = RelaydConfig(http=words[0] == "http", nodelay=False)
            elif len(words) == 4 and words[1] == "protocol" and words[3] == "{":
                raise ConfigError(f"{path}:{lineno}: invalid protocol type: {words[0]}")
            elif words[0] == "relay" and len(words) == 3 and words[2] == "{":
                block = "relay"
                relay_name = words[1]
            else:
                raise bad
            continue
        if words == ["}"]:
            if block == "protocol":
                assert current_proto is not None
                protocols[current_proto_name] = current_proto
                current_proto = None
            block = None
            continue
        if block == "protocol":
            assert current_proto is not None
            p = current_proto
            if words == ["tcp", "splice"]:
                p = replace(p, splice=True)
            elif words == ["tcp", "no", "splice"]:
                p = replace(p, splice=False)
            elif words == ["tcp", "nodelay"]:
                p = replace(p, nodelay=True)
            elif words[:3] == ["tcp", "socket", "buffer"] and len(words) == 4:
                p = replace(p, socket_buffer=_number(words[3], "buffer", bad))
            elif words == ["return", "error"]:
                p = replace(p, return_error=True)
            else:
                rule = parse_rule(words)
                if rule is None:
                    raise bad
                if rule.kind is None and rule.log:
                    raise bad
                p = replace(p, rules=(*p.rules, rule))
            current_proto = p
        else:  # relay
            if words[:2] == ["listen", "on"] and len(words) == 5 and words[3] == "port":
                listen = (words[2], _number(words[4], "port", bad))
            elif words[:2] == ["forward", "to"] and len(words) == 5 and words[3] == "port":
                forward = (words[2], _number(words[4], "port", bad))
            elif words[0] == "protocol" and len(words) == 2:
                relay_proto = words[1]
            elif words[:2] == ["session", "timeout"] and len(words) == 3:
                if not re.fullmatch(r"[0-9]+(\.[0-9]+)?", words[2]):
                    raise bad
                timeout = float(words[2])
            else:
                raise bad
    if block is not None:
        raise ConfigError(f"{path}: unexpected end of file inside a {block} block")
    if relay_name is None:
        raise ConfigError(f"{path}: no relay block")
    if listen is None or forward is None:
        raise ConfigError(f"{path}: relay {relay_name} needs 'listen on' and 'forward to'")
    proto = RelaydConfig()  # a relay without protocol: plain TCP with relayd's defaults
    if relay_proto is not None:
        if relay_proto not in protocols:
            raise ConfigError(f"{path}: relay {relay_name}: unknown protocol {relay_proto}")
        proto = protocols[relay_proto]
    prefixed = relay_name.startswith("relay-")
    name = relay_name[len("relay-"):] if prefixed else relay_name
    return replace(
        proto, name=name, relay_label="" if prefixed else relay_name, logs=cfg.logs, prefork=cfg.prefork,
        listen=listen, forward=forward, session_timeout=timeout,
    )
