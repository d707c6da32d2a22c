"""Upstream's check_logs (sosplice-cases 1.6), with messages that name role, value, expected and seen."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from .cases import Case, Role

ROLES = ("client", "relay", "server")


class CaseFailure(AssertionError):
    """The logs of a run do not show what the case expects."""


def first(lines: Sequence[str], prefix: str) -> str | None:
    for line in lines:
        if line.startswith(prefix):
            return line[len(prefix):].strip()
    return None


def present(lines: Sequence[str], word: str) -> bool:
    return any(re.fullmatch(word, line.strip()) for line in lines)


def check_logs(case: Case, logs: Mapping[str, Sequence[str]]) -> None:
    """Raise CaseFailure listing every expectation the logs miss."""
    if case.nocheck:
        return
    problems: list[str] = []
    roles: dict[str, Role] = {"client": case.client, "relay": case.relay, "server": case.server}
    relay_logs = logs.get("relay", [])

    def marker(flag: bool | None, word: str) -> None:
        if flag is None:
            return
        if flag and not present(relay_logs, word):
            problems.append(f"relay: expected a '{word}' line, none logged")
        if not flag and present(relay_logs, word):
            problems.append(f"relay: logged '{word}', which this case forbids")

    marker(case.relay.timeout, "Timeout")
    marker(case.relay.big, "Big")
    if case.relay.max and not case.relay.nomax and not present(relay_logs, "Max"):
        problems.append("relay: expected a 'Max' line, none logged")
    if case.relay.end and not present(relay_logs, "End"):
        problems.append("relay: expected an 'End' line, none logged")

    checked = [r for r in ROLES if not roles[r].nocheck and r in logs]

    lens: dict[str, str] = {}
    for r in checked:
        value = first(logs[r], "LEN:")
        if value is None:
            problems.append(f"{r}: no 'LEN:' line logged")
        else:
            lens[r] = value
    if len(set(lens.values())) > 1:
        problems.append("LEN differs between roles: " + ", ".join(f"{r} {v}" for r, v in lens.items()))
    if case.len is not None:
        for r, v in lens.items():
            if v != str(case.len):
                problems.append(f"{r}: LEN expected {case.len}, seen {v}")

    ends = [r for r in ("client", "server") if r in checked]
    lengths: dict[str, str | None] = {r: first(logs[r], "LENGTHS:") for r in ends}
    seen_lengths = {r: v for r, v in lengths.items() if v is not None}
    if len(set(seen_lengths.values())) > 1:
        problems.append("LENGTHS differ: " + ", ".join(f"{r} '{v}'" for r, v in seen_lengths.items()))
    if case.lengths is not None:
        want_lengths = " ".join(str(n) for n in case.lengths)
        for r in ends:
            seen_l = lengths[r]
            if seen_l != want_lengths:
                problems.append(f"{r}: LENGTHS expected '{want_lengths}', seen '{seen_l}'")

    md5s: dict[str, str | None] = {r: first(logs[r], "MD5:") for r in ends}
    accepted = case.md5 if isinstance(case.md5, tuple) else None
    if accepted is None and len({v for v in md5s.values() if v}) > 1:
        problems.append("MD5 differs: " + ", ".join(f"{r} {v}" for r, v in md5s.items()))
    if case.md5 is not None:
        allowed: tuple[str, ...] = accepted or (str(case.md5),)
        for r, seen_md5 in md5s.items():
            if seen_md5 not in allowed:
                problems.append(f"{r}: MD5 expected {' or '.join(allowed)}, seen {seen_md5}")

    for r in ROLES:
        if r not in logs:
            continue
        role = roles[r]
        errorin: str | None = role.errorin
        errorout: str | None = role.errorout
        if r == "relay" and not role.nocheck:
            errorin = "0" if errorin is None else errorin
            errorout = "0" if errorout is None else errorout
        if errorin is None:
            errorin = role.error
        for label, want_err in (("ERROR IN:", errorin), ("ERROR OUT:", errorout)):
            if want_err is None:
                continue
            seen = first(logs[r], label)
            if seen != want_err:
                problems.append(f"{r}: '{label}' expected {want_err or '(empty)'}, seen "
                                f"{'no such line' if seen is None else seen or '(empty)'}")
    if problems:
        raise CaseFailure(f"case {case.id}:\n  " + "\n  ".join(problems))


def check_splice_len(case: Case, logs: Mapping[str, Sequence[str]], receiver: str) -> None:
    """Splice mode must really splice: the relay's SPLICELEN counters add up to what the
    receiving end got. Only where the relay is checked (not nocheck)."""
    if case.nocheck or case.relay.nocheck or receiver not in logs:
        return
    relay = logs.get("relay", [])
    counts = [line.split(":", 1)[1].strip() for line in relay if line.startswith("SPLICELEN:")]
    if not counts:
        raise CaseFailure(f"case {case.id}: splice mode, but the relay logged no 'SPLICELEN:' line")
    spliced = sum(int(c) for c in counts)
    got = first(logs[receiver], "LEN:")
    if got is None or int(got) != spliced:
        raise CaseFailure(f"case {case.id}: relay SPLICELEN total {spliced} ({' + '.join(counts)}), "
                          f"but the {receiver} got LEN {got}")
