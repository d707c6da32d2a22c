"""Roles on a remote host through OpenSSH: `--splice-target ssh://[user@]host[:port]`.

One master connection per process (ControlMaster in a private temporary
directory, ControlPersist as a safety net), started through pexpect with
`-o BatchMode=yes` and host key checking left on. The agent package is uploaded
once per run (a tar stream on ssh's stdin) into a fresh `mktemp -d` directory on
the remote, and each role runs there as `python3 -I -S` with its spec as JSON
on stdin: nothing user-supplied is ever pasted into a remote shell string.

Remote OS: OpenBSD and FreeBSD get the `native` backend and their own
personality; anything else the emulated splicer. A failure of ssh itself (exit
255 without the role's own end, unreachable host, unknown host key, no
python3, a dead master) raises InfrastructureError with one line that says
what to do.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from .. import leash, sweep
from .base import InfrastructureError, RoleProcess

HARNESS = Path(__file__).resolve().parents[1]
# the agent and everything it imports: stdlib only (see harness/agent.py)
AGENT_FILES = ("__init__.py", "agent.py", "leash.py", "ports.py", "steps.py", "ledger.py", "cases.py", "splice/__init__.py",
               "splice/api.py", "splice/kpipe.py", "splice/native.py",
               *sorted(f"splice/emulated/{p.name}" for p in (HARNESS / "splice" / "emulated").glob("*.py")))
# the relay daemon of the relayd cases (stdlib only), so that `python3 -m harness.relayd`
# runs in the remote directory, and the launcher that runs any relay daemon there
RELAYD_FILES = ("relayd/__init__.py", "relayd/__main__.py", "relayd/cli.py", "relayd/config.py",
                "relayd/daemon.py", "relayd/http.py")
# the relay of `python -m harness.perf --target ssh://...`, run by the agent (stdlib only)
PERF_FILES = ("perf/__init__.py", "perf/relay.py")
LAUNCHER = "sosplice_agent.py"
RELAYD_LAUNCHER = "sosplice_relayd.py"
CONNECT_TIMEOUT = 10.0
REACH_TIMEOUT = 5.0  # each connect of the setup's reachability check
# the remote connects to this machine's listener; the remote listens, this machine connects
REACH_OUT = ("import socket\ntry:\n    socket.create_connection(({addr!r}, {port}), {timeout}).close()\n"
             "    print('reach-ok')\nexcept OSError as e:\n    print('reach-fail', e.strerror or 'timed out')\n")
REACH_IN = ("import socket, sys\ntry:\n    s = socket.socket(socket.AF_INET6 if ':' in {addr!r} else socket.AF_INET)\n"
            "    s.bind(({addr!r}, 0))\n    s.listen(1)\nexcept OSError as e:\n    print('reach-none', e.strerror)\n"
            "    sys.exit(0)\nprint('reach-port', s.getsockname()[1], flush=True)\ns.settimeout({timeout} + 2)\n"
            "try:\n    s.accept()\nexcept OSError:\n    pass\n")
COMMAND_TIMEOUT = 30.0
# seconds an idle master stays up if nobody closes it (a controller killed with SIGKILL);
# long enough that a worker busy with local tests keeps its master
PERSIST = 1800
MIN_PYTHON = (3, 10)
NATIVE = {"OpenBSD": "openbsd", "FreeBSD": "freebsd"}
INSTALL_PYTHON = {"OpenBSD": "pkg_add python3", "FreeBSD": "pkg install python3"}
# the owner file of each run directory on the remote (SshHost.sweep_remote)
OWNERS = ('for f in "${TMPDIR:-/tmp}"/sosplice.*/owner; do '
          '[ -f "$f" ] && printf "SOSPLICE-OWNER %s %s\\n" "${f%/owner}" "$(cat "$f")"; done; true')
SAFE_DIR = re.compile(r"^/[A-Za-z0-9._/-]*/sosplice\.[A-Za-z0-9]+$")

# `python3 -I` leaves the current directory out of sys.path, so `-m harness.agent`
# would not find the package: this launcher puts its own directory first.
LAUNCHER_TEXT = '''\
"""Run harness.agent from this directory under python3 -I -S."""
import os
import runpy
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
if sys.argv[1:] == ["--check"]:
    import harness.agent  # noqa: F401

    print("agent-ok")
elif sys.argv[1:] == ["--check-splice"]:
    from harness.splice import native

    print("no-splice " + native.missing() if native.missing() else "splice-ok")
else:
    runpy.run_module("harness.agent", run_name="__main__", alter_sys=True)
'''

# One role: stdin is its spec, stdout its events, then a line saying how it ended
# (ssh cannot tell a death by signal from its own failures). The pid file lets the
# end-of-run sweep find agents whose controller vanished.
ROLE_SH = """\
cd "$(dirname "$0")" || exit 97
SOSPLICE_PY=$(cat python) || exit 97
export SOSPLICE_PY
exec 3<&0 </dev/null
sh -c 'echo $$ > "pids/$$"; exec "$SOSPLICE_PY" -I -S "$PWD/sosplice_agent.py"' <&3 3<&- &
pid=$!
exec 3<&-
wait "$pid"
st=$?
rm -f "pids/$pid"
printf '{"event": "remote-exit", "status": %d}\\n' "$st"
exit 0
"""

# ctl.sh kill PID: end one agent (with the process group it leads) or relay daemon of this
# directory; ctl.sh cleanup: end all, remove the directory. A relay daemon (its command line names its configuration in
# "$d/relayd/") gets SIGTERM, through doas/sudo -n when its pid file names one. `ps -ww`: without
# a tty, OpenBSD's ps cuts the command line at 79 columns, before the directory.
CTL_SH = """\
d=$(cd "$(dirname "$0")" && pwd) || exit 97
end() {
    case "$(ps -ww -p "$1" -o args= 2>/dev/null)" in
    *"$d/sosplice_agent.py"*) kill -KILL -- "-$1" 2>/dev/null; kill -KILL "$1" 2>/dev/null ;;
    *"$d/relayd/"*)
        how=$(cat "$d/relayd-pids/$1" 2>/dev/null)
        case "$how" in
        doas|sudo|*/doas|*/sudo) "$how" -n kill -TERM "$1" 2>/dev/null ;;
        *) kill -TERM "$1" 2>/dev/null ;;
        esac
        ;;
    esac
}
case "$1" in
kill) end "$2" ;;
cleanup)
    for f in "$d"/pids/* "$d"/relayd-pids/*; do
        [ -f "$f" ] && end "${f##*/}"
    done
    cd / && rm -rf "$d" && echo "removed $d"
    ;;
esac
"""


@dataclass(frozen=True)
class SshUrl:
    user: str | None
    host: str
    port: int | None

    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port is not None else ""
        return f"ssh://{user}{host}{port}"


URL = re.compile(r"^ssh://(?:(?P<user>[A-Za-z0-9._%+-]+)@)?(?:\[(?P<v6>[0-9A-Fa-f:.%A-Za-z]+)\]|(?P<host>[A-Za-z0-9._-]+))"
                 r"(?::(?P<port>\d{1,5}))?/?$")


def parse_target(text: str) -> list[SshUrl] | None:
    """`local` (None) or one or more comma separated ssh://[user@]host[:port]."""
    text = text.strip()
    if text in ("", "local"):
        return None
    urls = []
    for item in (t.strip() for t in text.split(",")):
        m = URL.match(item)
        if not m:
            raise ValueError(f"--splice-target: {item!r} is not local or ssh://[user@]host[:port]")
        host = m.group("v6") or m.group("host")
        if host.startswith("-"):
            raise ValueError(f"--splice-target: {item!r}: a host name cannot start with '-'")
        port = int(m.group("port")) if m.group("port") else None
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"--splice-target: {item!r}: port {port} is out of range")
        user = unquote(m.group("user")) if m.group("user") else None
        if user is not None and (user.startswith("-") or not user):
            raise ValueError(f"--splice-target: {item!r}: bad user name")
        urls.append(SshUrl(user, host, port))
    return urls


def pick(urls: list[Any], worker: str | None) -> Any:
    """The host of an xdist worker: gw0 -> first, gw1 -> second, ... round robin."""
    m = re.fullmatch(r"gw(\d+)", worker or "")
    return urls[int(m.group(1)) % len(urls) if m else 0]


@dataclass
class Remote:
    """What a run knows about one remote host (shared with xdist workers as JSON)."""

    url: str
    sysname: str = ""
    release: str = ""
    machine: str = ""
    python: str = ""
    executable: str = "python3"
    backend: str = "emulated"
    personality: str = "openbsd"
    directory: str = ""
    # SSH_CONNECTION on the remote: this machine's address as the remote sees it, and the
    # remote's address as this machine reached it (the defaults of the two address options)
    client_addr: str = ""
    server_addr: str = ""

    def describe(self) -> str:
        return (f"{self.url}: {self.sysname} {self.release} {self.machine}, python {self.python}, "
                f"backend {self.backend}, personality {self.personality}, agent in {self.directory}")


def classify(url: SshUrl, output: str, status: int | None) -> str:
    """One line for a failed ssh, from what ssh printed."""
    text = output.replace("\r", "")
    lines = [line for line in text.splitlines() if line.strip()]
    last = lines[-1].strip() if lines else f"ssh exited with status {status}"
    port = url.port or 22
    keyscan = (f"ssh-keyscan{f' -p {port}' if url.port else ''} {url.host} >> ~/.ssh/known_hosts"
               f" (after checking the fingerprint)")
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text:
        return (f"{url}: the host key has CHANGED since it was recorded in known_hosts; if that is "
                f"expected, remove the old entry (ssh-keygen -R {url.host}) and accept the new one")
    if "Host key verification failed" in text or "No ED25519 host key is known" in text \
            or re.search(r"No \S+ host key is known", text):
        return (f"{url}: the host key is not known; accept it with {keyscan}, or pass "
                f"--splice-ssh-option=-oStrictHostKeyChecking=accept-new")
    for why in ("Connection refused", "No route to host", "Connection timed out",
                "Operation timed out", "Network is unreachable", "Could not resolve hostname",
                "Name or service not known", "nodename nor servname", "Connection closed by",
                "Connection reset by"):
        if why in text:
            return f"{url}: host unreachable ({last})"
    if "Permission denied" in text:
        return (f"{url}: login refused ({last}); give a key with --splice-ssh-option=-i "
                f"--splice-ssh-option=KEY, or add yours to the remote's authorized_keys")
    return f"{url}: ssh failed with status {status}: {last}"


class SshConnection:
    """A master connection to one host; every other ssh to it goes through the master."""

    def __init__(self, url: SshUrl, options: list[str] | None = None,
                 connect_timeout: float = CONNECT_TIMEOUT, rundir: str | None = None) -> None:
        self.url = url
        self.rundir = rundir  # the run's local directory, where the controller finds every master
        self.options = list(options or [])
        self.connect_timeout = connect_timeout
        self.tmp: str | None = None
        self.control = ""
        self.master_pid: int | None = None
        self.lock = threading.Lock()

    def base_argv(self, master: bool = False) -> list[str]:
        argv = ["ssh", "-T", "-o", "BatchMode=yes", "-o", f"ControlPath={self.control}"]
        if master:
            argv += ["-o", "ControlMaster=yes", "-o", f"ControlPersist={PERSIST}"]
        else:
            argv += ["-o", "ControlMaster=no"]
        # the user's options come before our defaults: for ssh, the first value wins
        argv += self.options
        argv += ["-o", f"ConnectTimeout={max(1, round(self.connect_timeout))}",
                 "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"]
        if self.url.port is not None:
            argv += ["-p", str(self.url.port)]
        return argv

    def argv(self, command: str, master: bool = False) -> list[str]:
        return [*self.base_argv(master), "--", self.url.destination(), command]

    # ---- the master

    def open(self, command: str) -> str:
        """Start the master, running `command` as its first session; return its output."""
        import pexpect  # controller side only: the agent stays stdlib-only

        if shutil.which("ssh") is None:
            raise InfrastructureError(f"{self.url}: no ssh client on this machine (install openssh-client)")
        self.tmp = tempfile.mkdtemp(prefix="sosplice-ssh-", dir=self.rundir)
        self.control = os.path.join(self.tmp, "master")
        if len(self.control) > 80:  # ssh appends ~17 characters; sockaddr_un holds about 104
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = tempfile.mkdtemp(prefix="sosplice-ssh-", dir="/tmp")
            self.control = os.path.join(self.tmp, "master")
        argv = self.argv(command, master=True)
        timeout = self.connect_timeout + COMMAND_TIMEOUT
        child = pexpect.spawn(argv[0], argv[1:], timeout=timeout, encoding="utf-8",
                              codec_errors="replace", env={**os.environ, "LC_ALL": "C"})
        try:
            child.expect(pexpect.EOF)
        except pexpect.TIMEOUT:
            child.close(force=True)
            self.close()
            raise InfrastructureError(
                f"{self.url}: no answer within {timeout:g} s (host unreachable?)") from None
        output = str(child.before or "")
        child.close()
        status = child.exitstatus if child.exitstatus is not None else 255
        if status != 0:
            self.close()
            raise InfrastructureError(classify(self.url, output, status))
        self.master_pid = self._check()
        if self.master_pid is None:
            self.close()
            raise InfrastructureError(f"{self.url}: the ssh master connection did not stay up")
        leash.guard(self.master_pid)  # a SIGKILL of this process ends the master too
        return output.replace("\r", "")

    def _check(self) -> int | None:
        """The master's pid, or None when it is not running."""
        if not self.control:
            return None
        try:
            done = subprocess.run([*self.base_argv(), "-O", "check", "--", self.url.destination()],
                                  capture_output=True, text=True, timeout=self.connect_timeout,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return None
        m = re.search(r"pid=(\d+)", done.stderr + done.stdout)
        return int(m.group(1)) if done.returncode == 0 and m else None

    def alive(self) -> bool:
        """Cheap: does the master answer on its control socket?"""
        if not self.control or self.master_pid is None:
            return False
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(self.connect_timeout)
            s.connect(self.control)
            return True
        except OSError:
            return False
        finally:
            s.close()

    def require(self) -> None:
        if not self.alive():
            raise InfrastructureError(
                f"{self.url}: the ssh master connection is gone (network down, remote rebooted, "
                f"or sshd restarted); the run stops")

    def run(self, command: str, stdin: bytes | None = None,
            timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess[bytes]:
        """One command through the master; an ssh failure (255) is an InfrastructureError."""
        self.require()
        try:
            done = subprocess.run(self.argv(command), input=stdin if stdin is not None else b"",
                                  capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise InfrastructureError(
                f"{self.url}: {command!r} did not finish within {timeout:g} s") from None
        if done.returncode == 255:
            raise InfrastructureError(
                classify(self.url, done.stderr.decode(errors="replace"), 255)
                if self.alive() else f"{self.url}: the ssh master connection is gone")
        return done

    def close(self) -> None:
        """End the master (by its control socket, then by pid) and remove the private directory."""
        pid = self.master_pid
        self.master_pid = None
        if self.control:
            with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                subprocess.run([*self.base_argv(), "-O", "exit", "--", self.url.destination()],
                               capture_output=True, timeout=self.connect_timeout,
                               stdin=subprocess.DEVNULL)
        if pid is not None:
            deadline = time.monotonic() + 5
            while _exists(pid) and time.monotonic() < deadline:
                time.sleep(0.05)  # polling an exit we asked for, with a deadline
            if _exists(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours still "exists": reap it if it is ours
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


# python3, or else the newest python3.N (a stock BSD package installs only the versioned
# name unless asked for the link); written for the Bourne and Korn shells of the BSDs
PYTHON_MINORS = " ".join(str(n) for n in range(30, 7, -1))
PROBE = ('echo "SOSPLICE-CONNECTION $SSH_CONNECTION"; echo SOSPLICE-PROBE; uname -s; uname -r; uname -m; '
         "py=$(command -v python3 2>/dev/null); "
         f'if [ -z "$py" ]; then for v in {PYTHON_MINORS}; do '
         'py=$(command -v "python3.$v" 2>/dev/null) && break; py=; done; fi; '
         'if [ -n "$py" ]; then '
         "\"$py\" -I -S -c 'import sys; print(\"%d.%d.%d\" % sys.version_info[:3]); "
         "print(sys.executable)'; "
         "else echo no-python3; fi")


def agent_tar(python: str) -> bytes:
    """The agent package, the launcher and the two shell helpers, as a ustar stream."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        def add(name: str, data: bytes, mode: int = 0o644) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))

        for rel in (*AGENT_FILES, *RELAYD_FILES, *PERF_FILES):
            add(f"harness/{rel}", (HARNESS / rel).read_bytes())
        add(LAUNCHER, LAUNCHER_TEXT.encode())
        add(RELAYD_LAUNCHER, (HARNESS / "relayd" / "launcher.py").read_bytes())
        add("role.sh", ROLE_SH.encode(), 0o755)
        add("ctl.sh", CTL_SH.encode(), 0o755)
        add("python", python.encode() + b"\n")  # the interpreter the probe found (no PATH shims)
    return buf.getvalue()


class SshHost:
    """The controller's view of one remote: probe, upload, final cleanup."""

    def __init__(self, url: SshUrl, options: list[str], connect_timeout: float = CONNECT_TIMEOUT,
                 personality: str = "openbsd", rundir: str | None = None) -> None:
        self.conn = SshConnection(url, options, connect_timeout, rundir)
        self.remote = Remote(url=str(url), personality=personality)
        self.swept = ""  # what sweep_remote() removed at open()

    def open(self) -> Remote:
        url = self.conn.url
        output = self.conn.open("/bin/sh -c " + shlex.quote(PROBE))
        lines = [line.strip() for line in output.split("SOSPLICE-PROBE", 1)[-1].splitlines() if line.strip()]
        if len(lines) < 4:
            raise InfrastructureError(f"{url}: unexpected answer to uname: {output.strip()[-200:]!r}")
        r = self.remote
        r.sysname, r.release, r.machine, python = lines[:4]
        m = re.search(r"SOSPLICE-CONNECTION (\S+) \d+ (\S+) \d+", output)
        if m:
            r.client_addr, r.server_addr = m.group(1), m.group(2)
        if python == "no-python3":
            how = INSTALL_PYTHON.get(r.sysname, "install python3")
            raise InfrastructureError(f"{url}: {r.sysname} has no python3 (nor python3.N) in PATH; {how} on it first")
        r.python = python
        r.executable = lines[4] if len(lines) > 4 and lines[4].startswith("/") else "python3"
        version = tuple(int(x) for x in re.findall(r"\d+", python)[:2])
        if version < MIN_PYTHON:
            raise InfrastructureError(
                f"{url}: python3 {python} is too old for the agent; it needs {'.'.join(map(str, MIN_PYTHON))} or later")
        if r.sysname in NATIVE:
            r.backend, r.personality = "native", NATIVE[r.sysname]
        else:
            r.backend = "emulated"
        self.swept = self.sweep_remote()
        script = ('umask 077; d=$(mktemp -d "${TMPDIR:-/tmp}/sosplice.XXXXXXXXXX") && '
                  f'mkdir "$d/pids" && cd "$d" && printf "%s\\n" {shlex.quote(sweep.owner())} > owner && '
                  'tar xf - && echo "SOSPLICE-DIR $d"')
        done = self.conn.run("/bin/sh -c " + shlex.quote(script), stdin=agent_tar(r.executable))
        m = re.search(r"SOSPLICE-DIR (\S+)", done.stdout.decode(errors="replace"))
        if done.returncode != 0 or not m:
            raise InfrastructureError(
                f"{url}: upload of the agent failed: {done.stderr.decode(errors='replace').strip()[-300:]}")
        directory = m.group(1)
        if not SAFE_DIR.match(directory):
            raise InfrastructureError(f"{url}: mktemp gave an unexpected directory {directory!r}")
        r.directory = directory
        check = self.conn.run(f"{shlex.quote(r.executable)} -I -S {shlex.quote(directory + '/' + LAUNCHER)} --check")
        if b"agent-ok" not in check.stdout:
            raise InfrastructureError(
                f"{url}: the agent does not import under python3 -I -S: "
                f"{check.stderr.decode(errors='replace').strip().splitlines()[-1:]}")
        if r.backend == "native":
            self.check_kernel()
        return r

    def check_reach(self, local_addr: str, remote_addr: str) -> None:
        """One TCP connect each way, before any case: the remote to this machine's listener at
        local_addr (where the local server listens), this machine to a listener on the remote
        at remote_addr (where the relay listens). A failure stops the run with one line that
        names the direction, instead of failing every case."""
        url, py = self.conn.url, shlex.quote(self.remote.executable)
        family = socket.AF_INET6 if ":" in local_addr else socket.AF_INET
        try:
            listener = socket.socket(family, socket.SOCK_STREAM)
            listener.bind((local_addr, 0))
            listener.listen(1)
        except OSError as e:
            raise InfrastructureError(f"{url}: this machine cannot listen on {local_addr} ({os.strerror(e.errno or 0)}); "
                                      "set --splice-local-addr to this machine's address as the remote sees it") from None
        with listener:
            port = listener.getsockname()[1]
            done = self.conn.run(f"{py} -I -S -c {shlex.quote(REACH_OUT.format(addr=local_addr, port=port, timeout=REACH_TIMEOUT))}",
                                 timeout=REACH_TIMEOUT + COMMAND_TIMEOUT)
        said = done.stdout.decode(errors="replace").strip()
        if "reach-ok" not in said:
            raise InfrastructureError(
                f"{url}: the remote cannot reach this machine at {local_addr} port {port} "
                f"({said.partition('reach-fail ')[2] or 'no answer'}); set --splice-local-addr to "
                "this machine's address as the remote sees it")
        listening = subprocess.Popen(self.conn.argv(f"{py} -I -S -c {shlex.quote(REACH_IN.format(addr=remote_addr, timeout=REACH_TIMEOUT))}"),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            assert listening.stdout is not None
            first = listening.stdout.readline().decode(errors="replace").split()
            if first[:1] != ["reach-port"]:
                raise InfrastructureError(
                    f"{url}: the remote cannot listen on {remote_addr} ({' '.join(first[1:]) or 'no answer'}); "
                    "set --splice-remote-addr to the remote's address as this machine reaches it")
            port = int(first[1])
            try:
                socket.create_connection((remote_addr, port), REACH_TIMEOUT).close()
            except OSError as e:
                raise InfrastructureError(
                    f"{url}: this machine cannot reach the remote at {remote_addr} port {port} "
                    f"({os.strerror(e.errno) if e.errno else 'timed out'}); set --splice-remote-addr to the "
                    "remote's address as this machine reaches it (behind NAT, as with QEMU user networking, "
                    "its ports cannot be reached: see the README, 'Run against an OpenBSD VM')") from None
        finally:
            with contextlib.suppress(subprocess.TimeoutExpired):
                listening.wait(REACH_TIMEOUT + 5)
            if listening.poll() is None:
                listening.kill()
                listening.wait()

    def check_kernel(self) -> None:
        """The remote's kernel must splice: one line naming it when it cannot (FreeBSD before
        14.3, an OpenBSD kernel built without SOCKET_SPLICE), before any case runs."""
        r = self.remote
        done = self.conn.run(f"{shlex.quote(r.executable)} -I -S "
                             f"{shlex.quote(r.directory + '/' + LAUNCHER)} --check-splice")
        out = done.stdout.decode(errors="replace").strip()
        if "splice-ok" in out:
            return
        why = out.partition("no-splice ")[2] or (done.stderr.decode(errors="replace").strip().splitlines()
                                                  or [f"status {done.returncode}"])[-1]
        raise InfrastructureError(f"{self.conn.url}: the kernel cannot splice: {why}; the suite needs "
                                  "SO_SPLICE there (OpenBSD, FreeBSD 14.3 or later)")

    def sweep_remote(self) -> str:
        """Directories of earlier runs of this machine that died: their agents ended, removed.

        Each holds an `owner` file (this machine, the run's mark); a run that is still alive,
        or another machine's, is left alone. One line saying what was removed, or "".
        """
        done = self.conn.run("/bin/sh -c " + shlex.quote(OWNERS))
        removed = []
        for line in done.stdout.decode(errors="replace").splitlines():
            parts = line.split(" ", 2)
            if len(parts) < 3 or parts[0] != "SOSPLICE-OWNER" or not SAFE_DIR.match(parts[1]):
                continue
            if sweep.owner_gone(parts[2]):
                self.conn.run(f"/bin/sh {shlex.quote(parts[1] + '/ctl.sh')} cleanup")
                removed.append(parts[1])
        if not removed:
            return ""
        return f"{self.conn.url}: removed {len(removed)} directory(ies) of earlier runs: {' '.join(removed)}"

    def close(self) -> str:
        """End every agent of this run on the remote, remove its directory, end the master."""
        note = ""
        try:
            if self.remote.directory and self.conn.alive():
                done = self.conn.run(f"/bin/sh {shlex.quote(self.remote.directory + '/ctl.sh')} cleanup")
                if b"removed" not in done.stdout:
                    note = (f"{self.conn.url}: could not remove {self.remote.directory}: "
                            f"{done.stderr.decode(errors='replace').strip()}")
            elif self.remote.directory:
                note = f"{self.conn.url}: master gone, {self.remote.directory} left on the remote"
        except InfrastructureError as e:
            note = str(e)
        finally:
            self.conn.close()
        return note


class SshRoleProcess(RoleProcess):
    """A role running on the remote through the master; its local process is ssh."""

    keep_stdin = True

    def __init__(self, target: SshTarget, name: str, spec: dict[str, Any], logdir: Path,
                 argv: list[str] | None = None) -> None:
        self.target = target
        self.remote_pid: int | None = None
        self.remote_status: int | None = None
        # the remote agent ends its group when its stdin ends: the ssh session's end (leash)
        super().__init__(name, argv or target.role_argv(), {**spec, "watch_stdin": True}, logdir)

    def exit_status(self, status: int) -> int:
        for event in self.events:
            if event.get("event") == "hello" and self.remote_pid is None:
                self.remote_pid = int(event["pid"])
            if event.get("event") == "remote-exit":
                st = int(event["status"])
                self.remote_status = -(st - 128) if 128 < st < 160 else st
        return self.remote_status if self.remote_status is not None else status

    def hello_pid(self) -> int | None:
        with self.cond:
            for event in self.events:
                if event.get("event") == "hello":
                    return int(event["pid"])
        return None

    def remote_ended(self) -> bool:
        with self.cond:
            return any(e.get("event") == "remote-exit" for e in self.events)

    def check_infrastructure(self) -> None:
        status = self.proc.poll()
        if status is None or any(e.get("event") == "remote-exit" for e in self.events):
            return
        url = self.target.conn.url
        if not self.target.conn.alive():
            raise InfrastructureError(f"{url}: the ssh master connection is gone; the run stops")
        stderr = ""
        with contextlib.suppress(OSError):
            stderr = (self.logpath.parent / f"{self.name}.stderr").read_text()
        if status == 255:
            raise InfrastructureError(classify(url, stderr, 255))
        last = (stderr.strip().splitlines() or ["no message"])[-1]
        raise InfrastructureError(f"{url}: the remote {self.name} role ended without reporting "
                                  f"(ssh status {status}): {last}")

    def kill(self) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(1.0)  # a role that just reported its result is on its way out
        alive = self.proc.poll() is None
        if alive or not self.remote_ended():  # ssh gone, the remote end may not be
            pid = self.hello_pid()
            if pid is None and alive:
                # the agent may not have said hello yet: give it a moment, with a deadline
                with contextlib.suppress(AssertionError):
                    self.wait_event("hello", lambda e: e.get("event") in ("hello", "exit"), 5.0)
                pid = self.hello_pid()
            if pid is not None and self.target.conn.alive():
                with contextlib.suppress(InfrastructureError):
                    self.target.conn.run(f"/bin/sh {shlex.quote(self.target.remote.directory + '/ctl.sh')}"
                                         f" kill {int(pid)}", timeout=self.target.conn.connect_timeout)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(5)
        super().kill()


class SshTarget:
    """Where a relay or API role runs: a remote host, through one master connection."""

    name = "ssh"

    def __init__(self, remote: Remote, options: list[str], local_addr: str, remote_addr: str,
                 connect_timeout: float = CONNECT_TIMEOUT, host: SshHost | None = None,
                 rundir: str | None = None, addr6: tuple[str, str] = ("::1", "::1")) -> None:
        self.remote = remote
        self.local_addr = local_addr
        self.remote_addr = remote_addr
        # the IPv6 cases' addresses, as the v4 pair; ("", "") when no IPv6 path is known
        self.local_addr6, self.remote_addr6 = addr6
        self.personality = remote.personality
        self.backend = remote.backend
        self.host = host
        if host is not None:
            self.conn = host.conn  # the controller's own connection (no xdist)
        else:
            urls = parse_target(remote.url)
            assert urls
            self.conn = SshConnection(urls[0], options, connect_timeout, rundir)
            self.conn.open("true")

    def role_argv(self) -> list[str]:
        self.conn.require()
        return self.conn.argv(f"/bin/sh {shlex.quote(self.remote.directory + '/role.sh')}")

    def spawn(self, role: str, spec: dict[str, Any], logdir: Path) -> RoleProcess:
        spec = {**spec, "backend": self.backend, "personality": self.personality}
        return SshRoleProcess(self, role, spec, logdir)

    def describe(self) -> str:
        return self.remote.describe()

    def close(self) -> None:
        if self.host is None:
            self.conn.close()


def end_masters(rundir: str) -> list[str]:
    """Ask every master whose control socket is in this run's directory to exit (workers that
    were killed before their own teardown leave theirs), then remove the directory."""
    ended = []
    for control in sorted(Path(rundir).glob("sosplice-ssh-*/master")):
        with contextlib.suppress(subprocess.TimeoutExpired, OSError):
            done = subprocess.run(["ssh", "-o", f"ControlPath={control}", "-O", "exit", "sosplice"],
                                  capture_output=True, timeout=CONNECT_TIMEOUT, stdin=subprocess.DEVNULL)
            if done.returncode == 0:
                ended.append(str(control))
    shutil.rmtree(rundir, ignore_errors=True)
    return ended


def remotes_to_json(remotes: list[Remote]) -> str:
    return json.dumps([asdict(r) for r in remotes])


def remotes_from_json(text: str) -> list[Remote]:
    return [Remote(**r) for r in json.loads(text)]


__all__ = ["InfrastructureError", "Remote", "SshConnection", "SshHost", "SshTarget", "SshUrl",
           "classify", "end_masters", "parse_target", "pick", "remotes_from_json", "remotes_to_json"]

