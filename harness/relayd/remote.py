"""The relay daemon of the relayd cases on an ssh target: `--splice-relayd-command`.

With an ssh target the relayd cases run the daemon on the remote (upstream's
remote mode): the real relayd of an OpenBSD host by default (`doas relayd`;
plain `relayd` when the login is root), or any command that takes relayd's
`-dvv -f FILE` and `-n -f FILE`, such as our own daemon (`python3 -m
harness.relayd`, uploaded with the agent). Client and server stay here; the
daemon listens on --splice-remote-addr and forwards to the server on
--splice-local-addr.

The remote end is `sosplice_relayd.py` (harness/relayd/launcher.py) in the
agent's directory: it picks the listen port, writes the configuration, runs the
daemon in the foreground and turns every line it prints into a `log` event, so
that the checks read the same transcript as locally. The command's words travel
as JSON on stdin, never in a shell string.

Whether the command can start is probed once per session (per xdist worker)
with a configuration check (`COMMAND -n -f FILE`); when it cannot, every relayd
case skips with one line naming what is missing.
"""

from __future__ import annotations

import contextlib
import json
import math
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..targets.ssh import RELAYD_LAUNCHER, SshRoleProcess, SshTarget
from .config import RelaydConfig, render

DEFAULT_COMMAND = "doas relayd"
PROBE_TIMEOUT = 60.0
STOP_GRACE = 25.0  # the launcher sends SIGKILL 20 s after SIGTERM


def parse_command(text: str) -> list[str]:
    """The words of --splice-relayd-command (shell-like quoting, no expansion)."""
    try:
        words = shlex.split(text)
    except ValueError as e:
        raise ValueError(f"--splice-relayd-command: {e}: {text!r}") from None
    if not words:
        raise ValueError("--splice-relayd-command is empty")
    return words


def whole_second_scale(timeout: float | None, scale: float) -> float:
    """The smallest time scale >= `scale` that makes `timeout` whole seconds (at least 1).

    relayd's `session timeout` takes whole seconds; the scale applies to every
    duration of the case, so raising it keeps the case's orderings.
    """
    if timeout is None or timeout <= 0:
        return scale
    seconds = max(1, math.ceil(round(timeout * scale, 6)))
    return seconds / timeout


class RemoteRelaydProcess(SshRoleProcess):
    """The launcher on the remote, and through it the daemon; stop() ends the daemon (SIGTERM)."""

    def stop(self) -> None:
        """Ask the launcher to send SIGTERM to the daemon (relayd.pl's kill after the peers)."""
        if self.held and self.proc.stdin is not None:
            self.held = False
            with contextlib.suppress(OSError):
                self.proc.stdin.write(b"stop\n")
                self.proc.stdin.close()

    def kill(self) -> None:
        """Stop the daemon through the launcher first; then the ssh side's usual end."""
        if self.proc.poll() is None:
            self.stop()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(STOP_GRACE)
        super().kill()


@dataclass
class RemoteRelayd:
    """How the relayd cases start their daemon on one ssh target."""

    target: SshTarget
    command: str = DEFAULT_COMMAND
    argv: list[str] | None = None  # as the probe found it will run (without doas as root)

    def __post_init__(self) -> None:
        self.words = parse_command(self.command)

    @property
    def default(self) -> bool:
        return self.words == parse_command(DEFAULT_COMMAND)

    def describe(self) -> str:
        return f"{' '.join(self.argv or self.words)} on {self.target.conn.url}"

    def launcher_command(self) -> str:
        """The remote command (ours, fixed): the interpreter the probe found, the launcher."""
        remote = self.target.remote
        return (f"{shlex.quote(remote.executable)} -I -S "
                f"{shlex.quote(remote.directory + '/' + RELAYD_LAUNCHER)}")

    def env(self) -> dict[str, str]:
        """For our own daemon: the remote's splicer (real relayd ignores these)."""
        remote = self.target.remote
        return {"SPLICE_BACKEND": remote.backend, "SPLICE_PERSONALITY": remote.personality,
                "PYTHONDONTWRITEBYTECODE": "1"}

    def spec(self, config: str) -> dict[str, Any]:
        return {"argv": self.argv or self.words, "config": config, "env": self.env(),
                "root_drops_doas": self.default}

    def probe_config(self) -> str:
        return render(RelaydConfig(name="probe", http=True, session_timeout=1,
                                   listen=(self.target.remote_addr, 0),
                                   forward=(self.target.local_addr, 9)))

    def probe(self) -> str | None:
        """None when the command can start on the remote, else one line saying what is missing."""
        spec = {**self.spec(self.probe_config()), "probe": True}
        done = self.target.conn.run(self.launcher_command(), stdin=(json.dumps(spec) + "\n").encode(),
                                    timeout=PROBE_TIMEOUT)
        answer: dict[str, Any] | None = None
        for raw in done.stdout.decode(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(raw)
                if isinstance(event, dict) and event.get("event") == "probe":
                    answer = event
        sysname = self.target.remote.sysname or "unknown"
        if answer is None:
            err = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no answer"]
            why = f"the launcher did not answer: {err[0]}"
        elif answer.get("ok"):
            self.argv = [str(w) for w in answer.get("argv", self.words)]
            return None
        else:
            why = str(answer.get("why") or "unknown reason")
        return (f"relayd cases need relayd on the target: remote is {sysname}, {why} "
                f"(set --splice-relayd-command)")

    def spawn(self, config: str, logdir: Path) -> RemoteRelaydProcess:
        spec = {**self.spec(config), "hold": True}  # stdin stays open: `stop` ends the daemon
        self.target.conn.require()
        argv = self.target.conn.argv(self.launcher_command())
        return RemoteRelaydProcess(self.target, "relay", spec, logdir, argv=argv)
