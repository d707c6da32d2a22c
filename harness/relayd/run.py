"""Run one relayd case: server, relay daemon and client as separate processes, then check the logs.

Order as upstream's relayd.pl: server, relayd (its relayd.conf rendered from the
case's configuration, forwarding to the port the server reported), client; then
client and server down, SIGTERM to the daemon, daemon down, check_logs. A case
without a server forwards to a port that is bound but not listening.

Locally the daemon is `python -m harness.relayd --json`. With a RemoteRelayd
(an ssh target) it is the remote's command (real relayd, by default) started by
the launcher there, as upstream's remote mode: it listens on the remote address
and forwards to the server on the local address; its log lines are the relay
log, and the spliced byte counts are read from its `session N spliced` lines
when it prints them (our daemon does, relayd does not: that check is then
skipped, with a warning).
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
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..checks import CaseFailure
from ..run import Settings
from ..targets.base import RoleProcess, WaitTimeout
from ..targets.local import ROOT, LocalTarget
from .config import RelaydConfig, render
from .remote import RemoteRelayd, RemoteRelaydProcess, whole_second_scale

UP_TIMEOUT = 10.0
DOWN_TIMEOUT = 30.0
REMOTE_UP_TIMEOUT = 30.0  # ssh, doas, and relayd's privsep start
SETTLE_TIMEOUT = 10.0  # a remote daemon's close lines after the peers ended
SESSION_LINE = re.compile(r"relay \S+, session \d+ \(")
SPLICED_LINE = re.compile(r"^session (\d+) spliced request (\d+) response (\d+)$")


class UncheckedSplicedBytes(UserWarning):
    """The remote relay daemon does not report its spliced bytes: that check was skipped."""


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
    spliced_reported: bool = True  # False: the daemon (real relayd) prints no spliced byte counts
    where: str = "local"


def _peer_spec(role: str, peer: Peer, settings: Settings, **extra: Any) -> dict[str, Any]:
    return {"role": role, "opts": {"func": peer.func, **peer.opts}, "scale": settings.scale, **extra}


class RelaydRun:
    def __init__(self, case: RelaydCase, mode: str, settings: Settings, logdir: Path,
                 remote: RemoteRelayd | None = None) -> None:
        self.case = case
        self.mode = mode
        self.remote = remote
        if remote is not None and case.config.session_timeout is not None:
            # relayd's session timeout is whole seconds: scale the whole case so that it is
            settings = dataclasses.replace(
                settings, scale=whole_second_scale(case.config.session_timeout, settings.scale))
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

    @property
    def forward_addr(self) -> str:
        """Where the server listens: this machine as the daemon reaches it."""
        return self.remote.target.local_addr if self.remote is not None else "127.0.0.1"

    def _forward_port(self) -> int:
        if self.case.server is not None:
            extra = {"listen": self.forward_addr} if self.remote is not None else {}
            server = self.peer("server", self.case.server, **extra)
            event = server.wait_event("its listening port", lambda e: e.get("event") == "listening",
                                      UP_TIMEOUT)
            return int(event["port"])
        self.placeholder = socket.socket()
        self.placeholder.bind((self.forward_addr, 0))  # bound, never listening: connects are refused
        return int(self.placeholder.getsockname()[1])

    def _start_local(self, cfg: RelaydConfig) -> tuple[RoleProcess, dict[str, Any], str]:
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
        return relayd, event, text

    def _start_remote(self, remote: RemoteRelayd, cfg: RelaydConfig) -> tuple[RoleProcess, dict[str, Any], str]:
        """The daemon on the remote: its time in the file (whole seconds), a port it picks there."""
        if cfg.session_timeout is not None:
            cfg = dataclasses.replace(cfg, session_timeout=round(cfg.session_timeout * self.settings.scale, 6))
        cfg = dataclasses.replace(cfg, listen=(remote.target.remote_addr, 0))
        relayd = self.procs["relay"] = remote.spawn(render(cfg), self.logdir)
        event = relayd.wait_event("its listening port", lambda e: e.get("event") == "listening",
                                  REMOTE_UP_TIMEOUT)
        text = render(dataclasses.replace(cfg, listen=(str(event["host"]), int(event["port"]))))
        (self.logdir / "relayd.conf").write_text(text)  # as the remote runs it
        relayd.wait_log("relay_launch: ", REMOTE_UP_TIMEOUT)  # Relayd.pm's up line
        return relayd, event, text

    def _execute(self) -> RelaydTranscript:
        case = self.case
        cfg = dataclasses.replace(case.config.with_mode(self.mode), name=case.id,
                                  forward=(self.forward_addr, self._forward_port()))
        if self.remote is None:
            relayd, event, text = self._start_local(cfg)
        else:
            relayd, event, text = self._start_remote(self.remote, cfg)
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
        if isinstance(relayd, RemoteRelaydProcess):
            self._settle(relayd)
            relayd.stop()
        else:
            self._sessions_closed(relayd)
            with contextlib.suppress(ProcessLookupError):
                os.kill(relayd.pid, signal.SIGTERM)
        relayd.wait_log("parent terminating", DOWN_TIMEOUT)
        status = relayd.wait_exit(DOWN_TIMEOUT)
        if status != 0:
            raise CaseFailure(f"relayd exited with status {status}\n{relayd.tail()}")
        logs = {name: proc.logs(name) for name, proc in self.procs.items()}
        if self.remote is None:
            with relayd.cond:
                sessions = [e for e in relayd.events if e.get("event") == "session"]
            return RelaydTranscript(logs=logs, sessions=sessions, config_text=text)
        sessions = spliced_lines(logs.get("relay", []))
        return RelaydTranscript(logs=logs, sessions=sessions, config_text=text,
                                spliced_reported=bool(sessions), where=self.remote.describe())

    def _settle(self, relayd: RoleProcess) -> None:
        """Remote: wait until the daemon has logged what the checks read, with a deadline.

        relayd announces no accepted session, so instead of counting sessions the
        wait is for at least one close line, every relayd line the case expects,
        and (from a daemon that reports them) one spliced line per close line.
        A deadline that expires is no failure here: check_logs names what is missing.
        """
        wanted = [(re.compile(regex), count) for regex, count in self.case.relayd_loggrep
                  if count is None or count > 0]

        def done() -> bool:
            lines = relayd.logs()
            closed = sum(1 for line in lines if SESSION_LINE.search(line))
            spliced = len(spliced_lines(lines))
            return (closed > 0 and (spliced == 0 or spliced >= closed)
                    and all(sum(1 for line in lines if r.search(line)) >= (count or 1)
                            for r, count in wanted))

        deadline = time.monotonic() + SETTLE_TIMEOUT
        with relayd.cond:
            while not done() and relayd.proc.poll() is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                relayd.cond.wait(left)

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


def spliced_lines(lines: list[str]) -> list[dict[str, Any]]:
    """The `session N spliced request R response S` lines of a daemon's text log, as session events."""
    sessions = []
    for line in lines:
        m = SPLICED_LINE.match(line.strip())
        if m:
            sessions.append({"id": int(m.group(1)), "request": int(m.group(2)),
                             "response": int(m.group(3))})
    return sessions


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
    if not t.spliced_reported:
        if mode == "splice" and case.spliced is not None:
            warnings.warn(UncheckedSplicedBytes(
                f"relayd {case.id} (splice): spliced bytes per session not checked: the relay "
                f"daemon ({t.where}) does not report them; log, LEN and MD5 checks done"), stacklevel=2)
    elif mode == "splice" and case.spliced is not None and sessions != list(case.spliced):
        problems.append(f"relay: spliced bytes per session (request, response) {sessions}, "
                        f"expected {list(case.spliced)}")
    elif mode == "copy" and any(a or b for a, b in sessions):
        problems.append(f"relay: copy mode spliced bytes {sessions}")
    if problems:
        raise CaseFailure(f"relayd {case.id} ({mode}):\n  " + "\n  ".join(problems)
                          + "\n--- relay log:\n  " + "\n  ".join(logs.get("relay", [])[-20:]))


def run_relayd_case(case: RelaydCase, mode: str, settings: Settings, logdir: Path,
                    remote: RemoteRelayd | None = None) -> RelaydTranscript:
    transcript = RelaydRun(case, mode, settings, logdir, remote).execute()
    check_logs(case, mode, transcript)
    return transcript
