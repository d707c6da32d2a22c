"""A case is data: what each role does, and what the logs must show afterwards.

An upstream `args-NAME.pl` becomes one Case with id NAME. Roles carry the same
keys as upstream's per-actor hashes; steps are names from harness.steps, or
(name, argument) pairs. Everything here serialises to JSON, because the relay
role's part travels to the remote agent.

Stdlib only: this module travels to the remote host with the agent.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

Step = str | tuple[str, Any]


@dataclass(frozen=True)
class Role:
    """One actor's options, as in upstream's per-actor hashes (sosplice-cases 1.3)."""

    steps: tuple[Step, ...] = ()  # empty: the harness default for that role
    len: int | None = None
    lengths: tuple[int, ...] | None = None
    sleep: float | None = None
    max: int | None = None
    idle: float | None = None
    size: int | None = None
    sndbuf: int | None = None
    rcvbuf: int | None = None
    oobinline: bool | None = None
    nonblocking: bool | None = None
    readblocking: bool | None = None
    connectnonblocking: bool | None = None
    alarm: float | None = None  # the role is expected to die by SIGALRM after this long
    down: str | None = None  # regex awaited in the log instead of the default
    nocheck: bool | None = None
    listendomain: str | None = None  # "inet" or "inet6"
    connectdomain: str | None = None
    # relay markers expected in the log
    timeout: bool | None = None
    big: bool | None = None
    nomax: bool | None = None
    end: bool | None = None
    # expected SO_ERROR values, by errno name ("0" none, "" nothing printed)
    error: str | None = None
    errorin: str | None = None
    errorout: str | None = None

    def over(self, defaults: Role) -> Role:
        """These options laid over the defaults (upstream merges args after defaults)."""
        mine = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        merged = {k: v for k, v in mine.items() if v not in (None, ())}
        return dataclasses.replace(defaults, **merged)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None or value == ():
                continue
            if f.name == "steps":
                value = [list(s) if isinstance(s, tuple) else s for s in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Role:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown role option(s): {', '.join(sorted(unknown))}")
        values = dict(data)
        if "steps" in values:
            values["steps"] = tuple(tuple(s) if isinstance(s, list) else s for s in values["steps"])
        if "lengths" in values:
            values["lengths"] = tuple(values["lengths"])
        return cls(**values)


@dataclass(frozen=True)
class Case:
    """One upstream tcp/ or udp/ args file."""

    id: str
    protocol: str  # "tcp" or "udp"
    client: Role = Role()
    relay: Role = Role()
    server: Role = Role()
    len: int | None = None
    lengths: tuple[int, ...] | None = None
    md5: str | tuple[str, ...] | None = None
    nocheck: bool = False
    noecho: bool = False
    # where upstream checks nothing: account for every byte the client sent (harness.ledger):
    # "prefix" (the server got the source's bytes in order, none twice, as the relay counted them)
    # or "exact" (and the relay's account adds up to exactly what the client's kernel took)
    conserve: str | None = None
    doc: str = ""
    # personality name -> why the case cannot run there
    skip: dict[str, str] = field(default_factory=dict)

    def echo_skip_reason(self) -> str | None:
        """Why upstream's echo.pl would exit at once for this case, if it would."""
        if self.protocol != "tcp":
            return "echo mode is TCP only"
        if self.noecho:
            return "upstream marks it noecho"
        if self.client.alarm is not None or self.server.alarm is not None:
            return "upstream skips echo when client or server has an alarm"
        return None


@dataclass(frozen=True)
class ApiCase:
    """One upstream error/ args file: a script of socket operations and the errno it ends with.

    `script` is a list of operations (harness.steps.API_OPS) run in one process.
    Every operation but the one that is expected to fail must succeed. `expect`
    maps a personality to (errno name, index of the failing operation); index -1
    is the last operation and "0" means the whole script succeeds.
    """

    id: str
    script: tuple[tuple[Any, ...], ...]
    expect: dict[str, tuple[str, int]]
    doc: str = ""
    skip: dict[str, str] = field(default_factory=dict)
    # a case that measures a duration rule itself, with margins that are fractions of its durations,
    # runs at no smaller time scale than this (None: the run's scale)
    min_scale: float | None = None
    # a rule the emulation cannot follow on a Linux host: the case is a strict expected failure
    # wherever the script runs on Linux, whatever the splicer; the text names the rule and why
    linux_host_differs: str = ""

    def expected(self, personality: str) -> tuple[str, int]:
        index_errno = self.expect.get(personality) or self.expect["openbsd"]
        name, index = index_errno
        return name, index if index >= 0 else len(self.script) + index
