"""The remote end of a relayd case: runs the relay daemon on an ssh target (stdlib only).

Uploaded with the agent as `sosplice_relayd.py` and run there as
`python3 -I -S sosplice_relayd.py`, one process per relayd case. Its first line
on stdin is a JSON spec:

    {"argv": ["doas", "relayd"], "config": "<relayd.conf text>", "listen": "10.0.2.15",
     "env": {...}, "root_drops_doas": true, "hold": true}       # run the daemon
    {"probe": true, "argv": [...], "config": "...", "listen": "..."}   # can it start?

Run: the `listen on ADDR port 0` line gets a free port of this host (relayd cannot
bind port 0 and tell us), the configuration goes to a fresh file under
`relayd/` beside this script, and the daemon runs in the foreground as upstream's
Relayd.pm starts it: `ARGV -dvv -f FILE`, in its own session, its stderr and
stdout read line by line. Events are JSON lines on stdout, as the agent's:
`listening` (the port), `hello` (the daemon's pid), `log` (role relay: every line
the daemon printed, after an `execute: ...` line), and `remote-exit` (its status,
128+N for a signal) last. The pid is recorded in `relayd-pids/PID` (with `doas`
or `sudo` when the daemon needs that to be signalled), so that `ctl.sh` can end
it if this process cannot.

A line `stop` on stdin, or its end (the controller went away), sends SIGTERM to
the daemon (through `doas -n kill` / `sudo -n kill` when it runs as another user),
then SIGKILL if it has not ended within STOP_TIMEOUT seconds.

Probe: checks that the command's programs exist, that `doas -n kill` (or sudo)
may signal, and that `ARGV -n -f FILE` accepts a configuration like the cases';
prints one `probe` event with `ok`, `why` (what is missing), `argv` (the command
as it will run) and `sysname`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
PRIVILEGE = ("doas", "sudo")
# options of doas and sudo that take a value (to find the program after them)
VALUE_OPTIONS = ("-u", "-g", "-C", "-D", "-h", "-p", "-R", "-T", "-U", "-r", "-t")
STOP_TIMEOUT = 20.0
CHECK_TIMEOUT = 30.0
LISTEN_PORT_0 = re.compile(r"^(\s*listen on (\S+) port )0(\s|$)", re.MULTILINE)

_lock = threading.Lock()


def emit(event: str, **fields: Any) -> None:
    line = (json.dumps({"event": event, **fields}) + "\n").encode()
    with _lock, contextlib.suppress(OSError):
        os.write(1, line)


def log(text: str) -> None:
    emit("log", role="relay", text=text)


def command(spec: dict[str, Any]) -> list[str]:
    """The daemon's command: the given words; without doas when root runs the default."""
    argv = [str(w) for w in spec["argv"]]
    if spec.get("root_drops_doas") and os.geteuid() == 0 and argv[:1] == ["doas"]:
        argv = argv[1:]
    return argv


def ours_with_settings(argv: list[str], spec: dict[str, Any]) -> list[str]:
    """Our own daemon takes its splicer on the command line: doas and sudo clear the
    environment, so SPLICE_BACKEND/SPLICE_PERSONALITY would not reach it there."""
    if not any("harness.relayd" in word for word in argv):
        return argv
    env = spec.get("env", {})
    return [*argv, *(f"--splice-{key}={env[var]}" for key, var in
                     (("backend", "SPLICE_BACKEND"), ("personality", "SPLICE_PERSONALITY")) if var in env)]


def privilege(argv: list[str]) -> str:
    """The command's doas or sudo (as given: a name or a path) when it runs through one, else ''."""
    return argv[0] if argv and os.path.basename(argv[0]) in PRIVILEGE else ""


def programs(argv: list[str]) -> list[str]:
    """The programs the command needs: the first word, and after doas/sudo the daemon."""
    found = argv[:1]
    if privilege(argv):
        rest = argv[1:]
        while rest and rest[0].startswith("-"):
            option = rest.pop(0)
            if option in VALUE_OPTIONS and rest:
                rest.pop(0)
        found += rest[:1]
    return found


PF_BLOCKED = range(6000, 6011)  # OpenBSD's default pf.conf blocks these from outside (harness/ports.py)


def free_port(host: str) -> int:
    """A port for relayd's listener; this file runs alone on the remote, so the rule of
    harness/ports.py is kept here too: never one that OpenBSD's default pf.conf blocks."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    held: list[socket.socket] = []
    try:
        while len(held) < 32:
            s = socket.socket(family, socket.SOCK_STREAM)
            held.append(s)
            s.bind((host, 0))
            port: int = s.getsockname()[1]
            if port not in PF_BLOCKED:
                return port
        raise OSError(f"no free port outside 6000-6010 on {host}")
    finally:
        for s in held:
            s.close()


def place(config: str) -> tuple[str, str, int]:
    """The configuration with a free port on its `listen on ... port 0` line; address, port."""
    m = LISTEN_PORT_0.search(config)
    if m is None:
        raise ValueError("no 'listen on ADDRESS port 0' line in the configuration")
    host = m.group(2)
    port = free_port(host)
    text = config[: m.start()] + f"{m.group(1)}{port}{m.group(3)}" + config[m.end():]
    return text, host, port


def write_config(text: str) -> str:
    directory = os.path.join(HERE, "relayd")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, path = tempfile.mkstemp(prefix="relayd-", suffix=".conf", dir=directory)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def last_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def rules_file(privilege_name: str, system: str | None = None) -> str:
    """Where the rules of doas (or sudo) live on this system: FreeBSD's ports put them in /usr/local."""
    system = system or os.uname().sysname
    local = "/usr/local" if system == "FreeBSD" else ""
    return f"{local}/etc/doas.conf" if privilege_name == "doas" else f"{local}/etc/sudoers"


CONTROL_SOCKET = "/var/run/relayd.sock"  # relayd has no option to move it


def relayd_in_service(argv: list[str]) -> str:
    """Why the real relayd must not run here: one in service answers on its control socket,
    which every relayd unlinks and binds at start ("" when none does, or for our own daemon)."""
    if any("harness.relayd" in word for word in argv):
        return ""  # ours keeps no control socket
    probe_sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe_sock.settimeout(2.0)
    try:
        probe_sock.connect(CONTROL_SOCKET)
    except OSError:
        return ""  # no socket, or a stale one: no relayd answers there
    finally:
        probe_sock.close()
    return (f"a relayd in service answers on {CONTROL_SOCKET}, which each relayd started by the cases "
            "would unlink and take from it: stop it first (rcctl stop relayd) or use another host")


def probe(spec: dict[str, Any]) -> dict[str, Any]:
    argv = command(spec)
    sysname = os.uname().sysname
    result: dict[str, Any] = {"ok": False, "argv": argv, "sysname": sysname, "why": ""}
    if not argv:
        result["why"] = "the relayd command is empty"
        return result
    missing = [p for p in programs(argv) if shutil.which(p) is None]
    if missing:
        result["why"] = ", ".join(f"no {p}" for p in missing)
        return result
    in_service = relayd_in_service(argv)
    if in_service:
        result["why"] = in_service
        return result
    how = privilege(argv)
    if how:
        # the daemon runs as root: stopping it takes `doas -n kill` (sudo -n kill)
        done = subprocess.run([how, "-n", "kill", "-0", str(os.getpid())], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=CHECK_TIMEOUT)
        if done.returncode != 0:
            name = os.path.basename(how)
            result["why"] = (f"'{name} -n kill' is refused ({last_line(done.stdout + done.stderr)}), "
                             f"so the daemon could not be stopped; permit relayd and kill without "
                             f"password in {rules_file(name, sysname)}")
            return result
    try:
        text, _, _ = place(str(spec["config"]))
    except (ValueError, OSError) as e:
        result["why"] = f"cannot place the probe configuration: {e}"
        return result
    path = write_config(text)
    try:
        done = subprocess.run([*ours_with_settings(argv, spec), "-n", "-f", path], stdin=subprocess.DEVNULL, cwd=HERE,
                              capture_output=True, text=True, timeout=CHECK_TIMEOUT,
                              env={**os.environ, **spec.get("env", {})})
    except subprocess.TimeoutExpired:
        result["why"] = f"'{' '.join(argv)} -n -f relayd.conf' did not finish within {CHECK_TIMEOUT:g} s"
        return result
    except OSError as e:
        result["why"] = f"'{' '.join(argv)}' cannot run: {e.strerror}"
        return result
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
    if done.returncode != 0:
        result["why"] = (f"'{' '.join(argv)} -n -f relayd.conf' failed with status {done.returncode}: "
                         f"{last_line(done.stdout + done.stderr)}")
        return result
    result["ok"] = True
    return result


def signal_daemon(pid: int, how: str, sig: signal.Signals) -> None:
    """Signal the daemon, through doas/sudo when it runs as another user."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    except PermissionError:
        if how:
            subprocess.run([how, "-n", "kill", f"-{sig.name[3:]}", str(pid)], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=CHECK_TIMEOUT,
                           check=False)


def run(spec: dict[str, Any]) -> int:
    argv = command(spec)
    how = privilege(argv)
    text, host, port = place(str(spec["config"]))
    path = write_config(text)
    cmd = [*ours_with_settings(argv, spec), "-dvv", "-f", path]
    emit("listening", role="relay", host=host, port=port)
    log(f"execute: {' '.join(cmd)}")
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, cwd=HERE, start_new_session=True,
                                env={**os.environ, **spec.get("env", {})})
    except OSError as e:
        log(f"exec {argv[0]} failed: {e.strerror}")
        emit("remote-exit", status=127)
        return 0
    pids = os.path.join(HERE, "relayd-pids")
    os.makedirs(pids, mode=0o700, exist_ok=True)
    pidfile = os.path.join(pids, str(proc.pid))
    with open(pidfile, "w") as f:
        f.write(f"{how}\n")
    emit("hello", role="relay", pid=proc.pid)

    def read() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            log(raw.decode(errors="replace").rstrip("\r\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def watch() -> None:
        for line in sys.stdin:
            if line.strip() == "stop":
                break
        if proc.poll() is None:  # asked to stop, or the controller is gone
            signal_daemon(proc.pid, how, signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                log(f"no exit within {STOP_TIMEOUT:g} s of SIGTERM: SIGKILL")
                signal_daemon(proc.pid, how, signal.SIGKILL)

    threading.Thread(target=watch, daemon=True).start()
    status = proc.wait()
    reader.join(5.0)  # the daemon's children may hold the pipe a moment longer
    with contextlib.suppress(OSError):
        os.unlink(pidfile)
    with contextlib.suppress(OSError):
        os.unlink(path)
    emit("remote-exit", status=128 - status if status < 0 else status)
    return 0


def main() -> int:
    line = sys.stdin.readline()
    try:
        spec = json.loads(line)
    except ValueError:
        emit("error", message=f"bad spec line: {line[:200]!r}")
        return 2
    if spec.get("probe"):
        emit("probe", **probe(spec))
        return 0
    try:
        return run(spec)
    except (OSError, ValueError) as e:
        emit("error", message=f"relay daemon: {e}")
        emit("remote-exit", status=1)
        return 0


if __name__ == "__main__":
    sys.exit(main())
