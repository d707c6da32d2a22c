"""Processes of a measurement: started by us, waited on with deadlines, reaped with their CPU time."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .. import leash

ROOT = Path(__file__).resolve().parents[2]


class PerfError(RuntimeError):
    """A measurement could not be made; the message says why in one line."""


class Proc:
    def __init__(self, argv: list[str], what: str, stdin: bytes | None = None) -> None:
        """Start argv; `stdin`, when given, is written to it and closed (a remote role's spec)."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        env.update(leash.parent_env())  # our helpers end with us (leash.end_with_parent)
        self.what = what
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                     cwd=str(ROOT), start_new_session=True,
                                     preexec_fn=leash.die_with_starter,
                                     stdin=subprocess.PIPE if stdin is not None else None)
        if stdin is not None and self.proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.write(stdin)
            self.proc.stdin.close()
        self.cpu = 0.0
        self._buf = b""

    @classmethod
    def python(cls, module: str, *args: str, what: str) -> Proc:
        return cls([sys.executable, "-m", module, *args], what)

    def event(self, name: str, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while True:
            while b"\n" in self._buf:
                line, self._buf = self._buf.split(b"\n", 1)
                try:
                    event: dict[str, Any] = json.loads(line)
                except ValueError:
                    continue
                if event.get("event") == name:
                    return event
            left = deadline - time.monotonic()
            if left <= 0:
                raise PerfError(f"{self.what}: no '{name}' within {timeout:g} s")
            if not select.select([fd], [], [], left)[0]:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                err = self.proc.stderr.read().decode(errors="replace").strip() if self.proc.stderr else ""
                raise PerfError(f"{self.what}: exited before '{name}': {err.splitlines()[-1] if err else ''}")
            self._buf += chunk

    def wait_text(self, text: str, timeout: float) -> None:
        """Wait for a plain-text line containing `text` (for programs that are not ours)."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while text.encode() not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise PerfError(f"{self.what}: no '{text}' within {timeout:g} s")
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise PerfError(f"{self.what}: exited before '{text}'")
                self._buf += chunk

    def reap(self, timeout: float) -> float:
        """Wait for the exit; return user+system CPU seconds."""
        deadline = time.monotonic() + timeout
        pidfd = os.pidfd_open(self.proc.pid) if hasattr(os, "pidfd_open") else None
        try:
            while True:
                pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
                if pid:
                    self.proc.returncode = os.waitstatus_to_exitcode(status)
                    self.cpu = usage.ru_utime + usage.ru_stime
                    return self.cpu
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if pidfd is not None:
                    select.select([pidfd], [], [], left)  # readable when the child exits
                else:
                    time.sleep(min(0.01, left))  # no pidfd on this OS: poll the exit, with a deadline
        finally:
            if pidfd is not None:
                os.close(pidfd)
        self.kill()
        raise PerfError(f"{self.what}: still running after {timeout:g} s")

    def kill(self) -> None:
        """End it if it still runs; either way reap it here, so that its CPU time is counted."""
        if self.proc.returncode is not None:
            return
        pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
        if not pid:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            pid, status, usage = os.wait4(self.proc.pid, 0)
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.cpu = usage.ru_utime + usage.ru_stime


def listening_port(pid: int, timeout: float, proto: str = "tcp") -> int:
    """The port a process we started is listening (TCP) or bound (UDP) on, read from /proc (Linux)."""
    state = "0A" if proto == "tcp" else "07"  # TCP_LISTEN; a bound UDP socket shows TCP_CLOSE
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        inodes = set()
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            pass
        for table in (f"/proc/net/{proto}", f"/proc/net/{proto}6"):
            try:
                lines = Path(table).read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                fields = line.split()
                if fields[3] == state and fields[9] in inodes:
                    return int(fields[1].rsplit(":", 1)[1], 16)
        time.sleep(0.02)  # polling /proc for the listener; the peer cannot tell us
    raise PerfError(f"process {pid} did not listen within {timeout:g} s")
