"""Run one relayd case: server, relay daemon and client as separate processes, then check the logs.

Order as upstream's relayd.pl: server, relayd (its relayd.conf rendered from the
case's configuration, forwarding to the port the server reported), client; then
client and server down, SIGTERM to the daemon, daemon down, check_logs. A case
without a server forwards to a port that is bound but not listening.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..checks import CaseFailure
from ..run import Settings
from ..targets.base import RoleProcess, WaitTimeout
from ..targets.local import ROOT, LocalTarget
from .config import RelaydConfig, render

UP_TIMEOUT = 10.0
DOWN_TIMEOUT = 30.0


@dataclass(frozen=True)
class Peer:
    """A client or server process: its function and upstream's options for it."""

    func: str
    opts: dict[str, Any] = field(default_factory=dict)
    down: str | None = None  # log regex awaited instead of Shutdown
    nocheck: bool = False
    loggrep: tuple[tuple[str, int | None], ...] = ()  # (regex, exact line count or None: present)


@dataclass(frozen=True)
class RelaydCase:
    """One upstream regress/usr.sbin/relayd args file."""

    id: str
    config: RelaydConfig
    client: Peer
    server: Peer | None  # None: upstream's noserver, nothing listens
    doc: str = ""
    len: int | None = None
    lengths: tuple[int, ...] | None = None  # flattened
    md5: tuple[str, ...] = ()  # in order, on both sides
    relayd_loggrep: tuple[tuple[str, int | None], ...] = ()
    # splice mode: (request, response) bytes spliced per session, in session order
    spliced: tuple[tuple[int, int], ...] | None = None
    # (role that logs, regex, role that gets SIGUSR1)
    signals: tuple[tuple[str, str, str], ...] = ()


@dataclass
class RelaydTranscript:
    logs: dict[str, list[str]]
    sessions: list[dict[str, Any]]
    config_text: str


def _peer_spec(role: str, peer: Peer, settings: Settings, **extra: Any) -> dict[str, Any]:
    return {"role": role, "opts": {"func": peer.func, **peer.opts}, "scale": settings.scale, **extra}


class RelaydRun:
    def __init__(self, case: RelaydCase, mode: str, settings: Settings, logdir: Path) -> None:
        self.case = case
        self.mode = mode
        self.settings = settings
        self.logdir = logdir
        self.env = LocalTarget().env
        self.procs: dict[str, RoleProcess] = {}
        self.placeholder: socket.socket | None = None

    def spawn(self, name: str, argv: list[str], spec: dict[str, Any]) -> RoleProcess:
        proc = RoleProcess(name, argv, spec, self.logdir, env=self.env, cwd=str(ROOT))
        self.procs[name] = proc
        return proc

    def peer(self, name: str, peer: Peer, **extra: Any) -> RoleProcess:
        argv = [sys.executable, "-m", "harness.relayd.peer"]
        return self.spawn(name, argv, _peer_spec(name, peer, self.settings, **extra))

    def execute(self) -> RelaydTranscript:
        try:
            return self._execute()
        finally:
            for proc in self.procs.values():
                proc.kill()
            if self.placeholder is not None:
                self.placeholder.close()

    def _forward_port(self) -> int:
        if self.case.server is not None:
            server = self.peer("server", self.case.server)
            event = server.wait_event("its listening port", lambda e: e.get("event") == "listening",
                                      UP_TIMEOUT)
            return int(event["port"])
        self.placeholder = socket.socket()
        self.placeholder.bind(("127.0.0.1", 0))  # bound, never listening: connects are refused
        return int(self.placeholder.getsockname()[1])

    def _execute(self) -> RelaydTranscript:
        case = self.case
        cfg = dataclasses.replace(case.config.with_mode(self.mode), name=case.id,
                                  forward=("127.0.0.1", self._forward_port()))
        text = render(cfg)
        conf = self.logdir / "relayd.conf"
        conf.write_text(text)
        relayd = self.spawn("relay", [
            sys.executable, "-m", "harness.relayd", "-f", str(conf), "--json",
            "--splice-backend", self.settings.backend,
            "--splice-personality", self.settings.personality,
            "--time-scale", repr(self.settings.scale),
        ], {})
        event = relayd.wait_event("its listening port", lambda e: e.get("event") == "listening", UP_TIMEOUT)
        relayd.wait_up(UP_TIMEOUT)
        client = self.peer("client", case.client, connect=[event["host"], int(event["port"])])
        watchers = [self._watch(*sig) for sig in case.signals]
        client.wait_up(UP_TIMEOUT)
        for name, peer in (("client", case.client), ("server", case.server)):
            if peer is not None:
                self.procs[name].wait_log(peer.down or "Shutdown", DOWN_TIMEOUT)
        for name in ("client", "server"):
            if name in self.procs:
                status = self.procs[name].wait_exit(DOWN_TIMEOUT)
                if status != 0:
                    raise CaseFailure(f"{name} exited with status {status}\n{self.procs[name].tail()}")
        for w in watchers:
            w.join(DOWN_TIMEOUT)
        self._sessions_closed(relayd)
        with contextlib.suppress(ProcessLookupError):
            os.kill(relayd.pid, signal.SIGTERM)
        relayd.wait_log("parent terminating", DOWN_TIMEOUT)
        status = relayd.wait_exit(DOWN_TIMEOUT)
        if status != 0:
            raise CaseFailure(f"relayd exited with status {status}\n{relayd.tail()}")
        logs = {name: proc.logs(name) for name, proc in self.procs.items()}
        with relayd.cond:
            sessions = [e for e in relayd.events if e.get("event") == "session"]
        return RelaydTranscript(logs=logs, sessions=sessions, config_text=text)

    @staticmethod
    def _sessions_closed(relayd: RoleProcess) -> None:
        """Wait until every session the daemon accepted has logged its close line."""
        deadline = time.monotonic() + DOWN_TIMEOUT
        with relayd.cond:
            while True:
                kinds = [e.get("event") for e in relayd.events]
                if kinds.count("session") >= kinds.count("accept") or "exit" in kinds:
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WaitTimeout(f"relay: {kinds.count('accept') - kinds.count('session')} "
                                      f"session(s) not closed within {DOWN_TIMEOUT:g} s\n{relayd.tail()}")
                relayd.cond.wait(left)

    def _watch(self, source: str, pattern: str, target: str) -> threading.Thread:
        """Send SIGUSR1 to `target` once `source` logs a line matching `pattern`."""

        def run() -> None:
            with contextlib.suppress(WaitTimeout, KeyError):
                self.procs[source].wait_log(pattern, DOWN_TIMEOUT)
                os.kill(self.procs[target].pid, signal.SIGUSR1)

        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t


def _grep(lines: list[str], regex: str) -> int:
    r = re.compile(regex)
    return sum(1 for line in lines if r.search(line))


def check_logs(case: RelaydCase, mode: str, t: RelaydTranscript) -> None:
    """Upstream's check_logs, plus the spliced byte counts in splice mode."""
    problems: list[str] = []
    logs = t.logs
    sides = {name: logs.get(name, []) for name in ("client", "server")}
    peers = {"client": case.client, "server": case.server}
    checked = [n for n, p in peers.items() if p is not None and not p.nocheck]
    lens = {n: [line[5:].strip() for line in sides[n] if line.startswith("LEN: ")] for n in checked}
    md5s = {n: [line[5:].strip() for line in sides[n] if line.startswith("MD5: ")] for n in lens}
    for n, values in lens.items():
        if not values:
            problems.append(f"{n}: no 'LEN:' line logged")
    if len(lens) == 2 and lens["client"] != lens["server"]:
        problems.append(f"LEN lines differ: client {lens['client']}, server {lens['server']}")
    for n, values in lens.items():
        if case.len is not None and values and values[0] != str(case.len):
            problems.append(f"{n}: first LEN {values[0]}, expected {case.len}")
        if case.lengths is not None:
            want = [str(x) for x in case.lengths]
            if values[: len(want)] != want:
                problems.append(f"{n}: LEN lines {values}, expected to start with {want}")
    if len(md5s) == 2 and md5s["client"] != md5s["server"] and not case.md5:
        problems.append(f"MD5 lines differ: client {md5s['client']}, server {md5s['server']}")
    for n, values in md5s.items():
        if case.md5 and values != list(case.md5):
            problems.append(f"{n}: MD5 lines {values}, expected {list(case.md5)}")
    greps: list[tuple[str, tuple[tuple[str, int | None], ...]]] = [("relay", case.relayd_loggrep)]
    greps += [(n, p.loggrep) for n, p in peers.items() if p is not None]
    for name, patterns in greps:
        for regex, count in patterns:
            seen = _grep(logs.get(name, []), regex)
            if count is None and seen == 0:
                problems.append(f"{name}: no line matches /{regex}/")
            elif count is not None and seen != count:
                problems.append(f"{name}: {seen} lines match /{regex}/, expected {count}")
    if _grep(logs.get("relay", []), "lost child|internal error"):
        problems.append("relay: a session hit an internal error")
    sessions = [(int(s["request"]), int(s["response"])) for s in sorted(t.sessions, key=lambda s: s["id"])]
    if mode == "splice" and case.spliced is not None and sessions != list(case.spliced):
        problems.append(f"relay: spliced bytes per session (request, response) {sessions}, "
                        f"expected {list(case.spliced)}")
    if mode == "copy" and any(a or b for a, b in sessions):
        problems.append(f"relay: copy mode spliced bytes {sessions}")
    if problems:
        raise CaseFailure(f"relayd {case.id} ({mode}):\n  " + "\n  ".join(problems)
                          + "\n--- relay log:\n  " + "\n  ".join(logs.get("relay", [])[-20:]))


def run_relayd_case(case: RelaydCase, mode: str, settings: Settings, logdir: Path) -> RelaydTranscript:
    transcript = RelaydRun(case, mode, settings, logdir).execute()
    check_logs(case, mode, transcript)
    return transcript
