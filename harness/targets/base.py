"""A role process and its event stream, whatever runs it (a local python, or ssh).

The controller waits on events with deadlines; a wait that expires says what it
waited for, how long, and the tail of the role's log.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Protocol

STARTED: dict[int, str] = {}  # process group id -> what it was, for the end-of-run check


def _live_members(pgid: int) -> bool:
    """Whether a process group has a member that is not a zombie waiting for its reaper."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


def surviving_groups(groups: dict[int, str] | None = None) -> list[str]:
    """Process groups this process started (or those given) that still have a live member."""
    return [f"process group {pgid} ({what}) is still running"
            for pgid, what in (STARTED if groups is None else groups).items() if _live_members(pgid)]


def groups_still_alive(groups: dict[int, str], grace: float = 2.0) -> list[str]:
    """Surviving groups once those already killed have had `grace` seconds to die."""
    deadline = time.monotonic() + grace
    while True:
        alive = surviving_groups(groups)
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.02)  # a SIGKILLed process takes a moment to become a zombie


def end_groups(groups: dict[int, str]) -> None:
    """Kill process groups we started, by their ids."""
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def host_system(target: Any) -> str:
    """The kernel a target's roles run on: this machine's, or the ssh remote's (uname -s)."""
    remote = getattr(target, "remote", None)
    return str(getattr(remote, "sysname", "")) if remote is not None else os.uname().sysname


class WaitTimeout(AssertionError):
    """A role did not produce an awaited event in time."""


class InfrastructureError(RuntimeError):
    """The target itself failed (ssh down, remote without python3): not a test result.

    The message is one line that says what failed and what to do; the run stops.
    """


class RoleProcess:
    """One agent process: its JSON events, its log file, its end."""

    keep_stdin = False  # True: stdin stays open while the role runs, and its end ends the role

    def __init__(self, name: str, argv: list[str], spec: dict[str, Any], logdir: Path,
                 env: dict[str, str] | None = None, cwd: str | None = None) -> None:
        self.name = name
        self.returncode: int | None = None  # how the role ended, once it has
        self.events: list[dict[str, Any]] = []
        self.cond = threading.Condition()
        self.logpath = logdir / f"{name}.log"
        self._log = self.logpath.open("w")
        self._stderr = (logdir / f"{name}.stderr").open("w")
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            env=env, cwd=cwd, start_new_session=True,
        )
        self.pid = self.proc.pid
        STARTED[self.pid] = f"{name}: {' '.join(argv)}"
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(spec).encode() + b"\n")
        self.held = bool(spec.get("hold"))
        if self.held or self.keep_stdin:
            self.proc.stdin.flush()  # stdin stays open: release() sends "go", its end ends the role
        else:
            self.proc.stdin.close()
        self.reader = threading.Thread(target=self._read, name=f"events-{name}", daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                event = {"event": "noise", "text": raw.decode(errors="replace").rstrip()}
            with self.cond:
                self.events.append(event)
                if event.get("event") == "log":
                    self._log.write(f"{event.get('role', self.name)}: {event['text']}\n")
                    self._log.flush()
                self.cond.notify_all()
        self.proc.wait()
        with self.cond:
            self.returncode = self.exit_status(self.proc.returncode)
            if self.returncode == -signal.SIGALRM:
                # upstream's loggrep appends "Alarm" for a child killed by SIGALRM
                self.events.append({"event": "log", "role": self.name, "text": "Alarm"})
            self.events.append({"event": "exit", "status": self.returncode})
            self._log.write(f"exit status {self.returncode}\n")
            self._log.close()
            self._stderr.close()
            self.cond.notify_all()

    def exit_status(self, status: int) -> int:
        """The role's status from its process's status (a remote role reports its own)."""
        return status

    def check_infrastructure(self) -> None:
        """Raise InfrastructureError when the process ended for a reason outside the role."""

    # ---- waiting

    def wait_event(self, what: str, match: Any, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.cond:
            seen = 0
            while True:
                for event in self.events[seen:]:
                    if match(event):
                        return event
                seen = len(self.events)
                if any(e.get("event") == "exit" for e in self.events):
                    self.check_infrastructure()
                    raise WaitTimeout(f"{self.name} exited before {what}\n{self.tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WaitTimeout(f"{self.name}: no {what} within {timeout:g} s\n{self.tail()}")
                self.cond.wait(left)

    def wait_log(self, pattern: str, timeout: float, role: str | None = None) -> str:
        regex = re.compile(pattern)
        role = role or self.name
        event = self.wait_event(
            f"log line matching /{pattern}/ from {role}",
            lambda e: e.get("event") == "log" and e.get("role") == role
            and regex.search(e["text"]) is not None,
            timeout,
        )
        return str(event["text"])

    def wait_up(self, timeout: float, role: str | None = None) -> None:
        role = role or self.name
        self.wait_event(f"'up' from {role}",
                        lambda e: e.get("event") == "up" and e.get("role") == role, timeout)

    def wait_exit(self, timeout: float) -> int:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise WaitTimeout(f"{self.name}: still running after {timeout:g} s\n{self.tail()}") from None
        self.reader.join(timeout)
        self.check_infrastructure()
        return self.proc.returncode if self.returncode is None else self.returncode

    def logs(self, role: str | None = None) -> list[str]:
        role = role or self.name
        with self.cond:
            return [e["text"] for e in self.events if e.get("event") == "log" and e.get("role") == role]

    def tail(self, lines: int = 15) -> str:
        with self.cond:
            texts = [f"  {e.get('role', '?')}: {e['text']}" for e in self.events if e.get("event") == "log"]
            errors = [f"  error: {e.get('message')}" for e in self.events if e.get("event") == "error"]
        stderr = ""
        with contextlib.suppress(OSError):
            stderr = (self.logpath.parent / f"{self.name}.stderr").read_text()[-1500:]
        out = "\n".join([f"--- last log lines of {self.name} (pid {self.pid}):", *texts[-lines:], *errors])
        if stderr.strip():
            out += f"\n--- stderr of {self.name}:\n{stderr.rstrip()}"
        return out

    def release(self) -> None:
        """Let a held role run its steps (scenario time starts now for every role)."""
        if not self.held:
            return
        self.held = False
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError, OSError):
            self.proc.stdin.write(b"go\n")
            self.proc.stdin.flush()
            if not self.keep_stdin:
                self.proc.stdin.close()

    # ---- ending

    def kill(self) -> None:
        """End the process group this role leads (it may have forked), by its id."""
        if (self.held or self.keep_stdin) and self.proc.stdin is not None:
            self.held = False
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.proc.wait()
        else:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)  # forked children left behind
        self.reader.join(5)


class Target(Protocol):
    """Where a role runs."""

    name: str

    def spawn(self, role: str, spec: dict[str, Any], logdir: Path) -> RoleProcess: ...

    def describe(self) -> str: ...
