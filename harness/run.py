"""Start the roles of a case on a target, wait on their events, and check the results.

Start order as upstream: server, relay, client; then client, relay and server
must come up (10 s each) and reach their down line (30 s each). Client and
server run locally; the relay role runs on the target.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cases import ApiCase, Case, Role
from .checks import CaseFailure, check_logs, check_splice_len
from .conservation import check_conservation
from .targets.base import RoleProcess, Target, WaitTimeout
from .targets.local import LocalTarget

UP_TIMEOUT = 10.0
DOWN_TIMEOUT = 30.0
DEFAULT_TIME_SCALE = 0.2

DEFAULTS: dict[str, dict[str, Role]] = {
    "tcp": {
        "client": Role(oobinline=True),
        "relay": Role(),
        "server": Role(oobinline=True),
    },
    "udp": {
        "client": Role(),
        "relay": Role(idle=3),
        "server": Role(idle=4),
    },
}


@dataclass(frozen=True)
class Settings:
    backend: str = "emulated"
    personality: str = "openbsd"
    scale: float = DEFAULT_TIME_SCALE


@dataclass
class Transcript:
    """What the roles of one run logged, and how their processes ended."""

    logs: dict[str, list[str]] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)
    logdir: Path | None = None


def down_pattern(name: str, role: Role) -> str:
    if role.down:
        return role.down
    if role.alarm is not None:
        return "Alarm"
    if name == "client":
        return "Shutdown|Broken pipe|Connection reset by peer"
    return "Shutdown"


class CaseRun:
    """One run of a case in one relay mode and variant."""

    def __init__(self, case: Case, mode: str, variant: str, settings: Settings, logdir: Path,
                 target: Target | None = None) -> None:
        self.case = case
        self.mode = mode
        self.variant = variant
        self.settings = settings
        self.logdir = logdir
        self.local = LocalTarget()
        self.target: Target = target or self.local
        defaults = DEFAULTS[case.protocol]
        self.roles = {name: getattr(case, name).over(defaults[name]) for name in ("client", "relay", "server")}
        self.procs: dict[str, RoleProcess] = {}
        # UDP has no accept to line the roles up: each waits until all are up, then all start
        # together, so that process start-up never eats into a scaled idle time.
        self.hold = case.protocol == "udp" and variant == "relay"

    def spec(self, name: str, **extra: Any) -> dict[str, Any]:
        return {
            "role": name, "protocol": self.case.protocol, "mode": self.mode,
            "variant": self.variant, "opts": self.roles[name].to_json(),
            "backend": self.settings.backend, "personality": self.settings.personality,
            "scale": self.settings.scale, "hold": self.hold, **self.addresses(name),
            "conserve": self.case.conserve if self.variant == "relay" else None, **extra,
        }

    def addresses(self, name: str) -> dict[str, Any]:
        """With a remote relay, the local server listens where the remote reaches this machine
        (--splice-local-addr) and the relay where this machine reaches the remote
        (--splice-remote-addr); an IPv6 listener takes the IPv6 pair (--splice-local-addr6,
        --splice-remote-addr6, ::1 with a loopback remote)."""
        v6 = "6" if self.roles[name].listendomain == "inet6" else ""
        addr = {"server": getattr(self.target, f"local_addr{v6}", None),
                "relay": getattr(self.target, f"remote_addr{v6}", None)}.get(name)
        if self.target is self.local or not addr:
            return {}
        return {"listen": addr}

    def listening(self, proc: RoleProcess) -> tuple[str, int]:
        event = proc.wait_event("its listening port", lambda e: e.get("event") == "listening", UP_TIMEOUT)
        return str(event["host"]), int(event["port"])

    def execute(self) -> Transcript:
        try:
            if self.variant == "echo":
                self._start_echo()
            else:
                self._start_relay()
            self._await_downs()
            return self._transcript()
        finally:
            for proc in self.procs.values():
                proc.kill()

    def _start_relay(self) -> None:
        server = self.procs["server"] = self.local.spawn("server", self.spec("server"), self.logdir)
        relay = self.procs["relay"] = self.target.spawn(
            "relay", self.spec("relay", connect=list(self.listening(server))), self.logdir)
        client = self.procs["client"] = self.local.spawn(
            "client", self.spec("client", connect=list(self.listening(relay))), self.logdir)
        client.wait_up(UP_TIMEOUT)
        relay.wait_up(UP_TIMEOUT)
        server.wait_up(UP_TIMEOUT)
        for proc in (server, relay, client):
            proc.release()

    def _start_echo(self) -> None:
        """echo.pl: the relay splices its one socket to itself; a child of the client reads."""
        relay = self.procs["relay"] = self.target.spawn("relay", self.spec("relay"), self.logdir)
        client = self.procs["client"] = self.local.spawn(
            "client",
            self.spec("client", connect=list(self.listening(relay)),
                      child_opts=self.roles["server"].to_json()),
            self.logdir,
        )
        client.wait_up(UP_TIMEOUT)
        relay.wait_up(UP_TIMEOUT)
        client.wait_up(UP_TIMEOUT, role="server")

    def _proc_of(self, name: str) -> RoleProcess:
        if name == "server" and self.variant == "echo":
            return self.procs["client"]
        return self.procs[name]

    def _await_downs(self) -> None:
        for name in ("client", "relay", "server"):
            self._proc_of(name).wait_log(down_pattern(name, self.roles[name]), DOWN_TIMEOUT, role=name)
        for name, proc in self.procs.items():
            status = proc.wait_exit(DOWN_TIMEOUT)
            alarm = self.roles[name].alarm is not None
            if status != 0 and not (alarm and status == -signal.SIGALRM):
                raise CaseFailure(f"{name} exited with status {status}\n{proc.tail()}")

    def _transcript(self) -> Transcript:
        logs = {name: self._proc_of(name).logs(name) for name in ("client", "relay", "server")}
        status = {name: proc.returncode if proc.returncode is not None else proc.proc.returncode
                  for name, proc in self.procs.items()}
        return Transcript(logs=logs, status=status, logdir=self.logdir)


def run_case(case: Case, mode: str, variant: str, settings: Settings, logdir: Path,
             target: Target | None = None) -> Transcript:
    """Run a case and check its logs; raise CaseFailure (or WaitTimeout) when it fails."""
    transcript = CaseRun(case, mode, variant, settings, logdir, target).execute()
    check_logs(case, transcript.logs)
    if mode == "splice":
        receiver = "client" if "ioflip" in case.relay.steps else "server"
        check_splice_len(case, transcript.logs, receiver)
    if case.conserve and variant == "relay":
        check_conservation(case, transcript.logs)
    return transcript


@dataclass
class ApiResult:
    errno: str
    index: int | None
    op: Any


def run_api_case(case: ApiCase, settings: Settings, logdir: Path,
                 target: Target | None = None) -> ApiResult:
    """Run an API script on the target and check the errno it ends with."""
    target = target or LocalTarget()
    spec = {"role": "api", "script": [list(op) for op in case.script], "backend": settings.backend,
            "personality": settings.personality, "scale": max(settings.scale, case.min_scale or 0.0)}
    proc = target.spawn("api", spec, logdir)
    try:
        event = proc.wait_event("the script's result",
                                lambda e: e.get("event") in ("result", "error"), UP_TIMEOUT * 2)
        if event["event"] == "error":
            raise CaseFailure(f"api {case.id}: {event['message']}")
        result = ApiResult(errno=event["errno"], index=event["index"], op=event["op"])
    finally:
        proc.kill()
    want, at = case.expected(settings.personality)
    if want == "0":
        if result.errno != "0":
            raise CaseFailure(f"api {case.id}: expected every operation to succeed, "
                              f"operation {result.index} {result.op} failed with {result.errno}")
    elif result.errno != want or result.index != at:
        seen = "success" if result.index is None else f"{result.errno} at operation {result.index} {result.op}"
        raise CaseFailure(f"api {case.id} ({settings.personality}): expected {want} at operation "
                          f"{at} {list(case.script[at])}, seen {seen}")
    return result


__all__ = ["CaseFailure", "CaseRun", "Settings", "Transcript", "WaitTimeout", "run_api_case", "run_case"]
