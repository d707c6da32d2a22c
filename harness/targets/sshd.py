"""A throwaway OpenSSH server on 127.0.0.1, for CI and the ssh target's self-tests.

    python3 -m harness.targets.sshd start DIR    # prints SSHD_PORT=... SSHD_PID=... (shell syntax)
    python3 -m harness.targets.sshd stop DIR     # ends that sshd by its recorded pid

Everything lives in DIR (created if missing): a host key and a client key made
for the occasion, authorized_keys, sshd_config, known_hosts for the client, an
ssh_config that uses both, the log and the pid. The server logs in as the user
running it (root in CI, PermitRootLogin prohibit-password). sshd cannot bind
port 0, so a port is picked free and a bind race is retried; readiness is the
"Server listening" line in sshd's log, waited for with a deadline.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .. import leash

SSHD = "/usr/sbin/sshd"
START_TIMEOUT = 10.0


class SshdError(RuntimeError):
    """sshd could not be set up; one line saying why."""


@dataclass
class LoopbackSshd:
    workdir: Path
    port: int
    pid: int
    user: str
    key: Path
    known_hosts: Path
    ssh_config: Path
    proc: subprocess.Popen[bytes] | None = None
    host: str = "127.0.0.1"  # where it listens: loopback, or an address inside its namespace

    @property
    def url(self) -> str:
        return f"ssh://{self.user}@{self.host}:{self.port}"

    def ssh_options(self) -> list[str]:
        return ["-i", str(self.key), "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "IdentitiesOnly=yes", "-F", "/dev/null"]

    def stop(self) -> None:
        stop_pid(self.pid, self.proc)


def available() -> str | None:
    """None when a loopback sshd can run here, else why not."""
    if not os.access(SSHD, os.X_OK):
        return f"{SSHD} is not installed (apt-get install openssh-server)"
    for tool in ("ssh", "ssh-keygen"):
        if not any(os.access(os.path.join(d, tool), os.X_OK) for d in os.environ.get("PATH", "").split(":")):
            return f"{tool} is not installed (apt-get install openssh-client)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def keygen(path: Path) -> None:
    if not path.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sosplice", "-f", str(path)],
                       check=True, stdin=subprocess.DEVNULL)


def start(workdir: Path, detach: bool = False, netns: str | None = None,
          address: str = "127.0.0.1") -> LoopbackSshd:
    """Start one; with `netns`, inside that network namespace (`ip netns exec`), on `address`."""
    why = available()
    if why:
        raise SshdError(why)
    workdir.mkdir(parents=True, exist_ok=True)
    workdir.chmod(0o700)
    user = pwd.getpwuid(os.getuid()).pw_name
    host_key, key = workdir / "host_ed25519", workdir / "id_ed25519"
    keygen(host_key)
    keygen(key)
    (workdir / "authorized_keys").write_text((workdir / "id_ed25519.pub").read_text())
    config = workdir / "sshd_config"
    config.write_text("\n".join([
        f"HostKey {host_key}",
        f"AuthorizedKeysFile {workdir / 'authorized_keys'}",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",  # the key files live under /tmp, which is world-writable
        f"PidFile {workdir / 'sshd.pid'}",
        "MaxStartups 100:30:200",
        "MaxSessions 100",
        "LogLevel INFO",
        "",
    ]))
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
    log = workdir / "sshd.log"
    for _attempt in range(5):
        port = free_port()
        log.write_text("")
        inside = ["ip", "netns", "exec", netns] if netns else []
        proc = subprocess.Popen(
            [*inside, SSHD, "-D", "-f", str(config), "-E", str(log), "-p", str(port), "-o", f"ListenAddress={address}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=None if detach else leash.die_with_starter)
        state = wait_listening(proc, log, port, address)
        if state == "up":
            break
        if state != "busy":
            stop_pid(proc.pid, proc)
            raise SshdError(f"sshd did not start: {state}")
    else:
        raise SshdError("sshd found no free port in 5 tries")
    host_pub = (workdir / "host_ed25519.pub").read_text().split()
    known = workdir / "known_hosts"
    known.write_text(f"[{address}]:{port} {host_pub[0]} {host_pub[1]}\n")
    ssh_config = workdir / "ssh_config"
    ssh_config.write_text("\n".join([
        "Host *",
        f"  HostName {address}",
        f"  Port {port}",
        f"  User {user}",
        f"  IdentityFile {key}",
        "  IdentitiesOnly yes",
        f"  UserKnownHostsFile {known}",
        "",
    ]))
    (workdir / "sshd.pid").write_text(f"{proc.pid}\n")
    return LoopbackSshd(workdir, port, proc.pid, user, key, known, ssh_config,
                        None if detach else proc, host=address)


def wait_listening(proc: subprocess.Popen[bytes], log: Path, port: int, address: str = "127.0.0.1") -> str:
    """'up' once sshd logs that it listens, 'busy' if the port was taken, else the log's last line."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if f"Server listening on {address} port {port}" in text:
            return "up"
        if proc.poll() is not None:
            text = log.read_text(errors="replace")
            if "Address already in use" in text:
                return "busy"
            lines = text.strip().splitlines() or [f"exit status {proc.returncode}"]
            return lines[-1]
        time.sleep(0.05)  # polling sshd's log for its ready line, with a deadline
    stop_pid(proc.pid, proc)
    return f"no 'Server listening' line within {START_TIMEOUT:g} s"


def stop_pid(pid: int, proc: subprocess.Popen[bytes] | None = None) -> None:
    """End one sshd by its pid: TERM, then KILL after a deadline."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if proc is not None:
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            proc.wait(5)
        return
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)  # not our child: poll its exit, with a deadline
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


NETNS_PREFIX = "sosplice-ci-"  # a namespace that outlives its starter: not one the sweep removes
USAGE = ("usage: python3 -m harness.targets.sshd start DIR [--netns [--shell SHELL]] | stop DIR\n"
         "  --netns: the sshd inside a network namespace of its own, across a veth link "
         "(192.0.2.x, 2001:db8::), SHELL the user's login shell there")


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("start", "stop") or (argv[0] == "stop" and len(argv) != 2):
        print(USAGE, file=sys.stderr)
        return 2
    workdir = Path(argv[1]).resolve()
    if argv[0] == "stop":
        namefile = workdir / "netns"
        try:
            pid = int((workdir / "sshd.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError) as e:
            print(f"sshd stop: no pid in {workdir / 'sshd.pid'}: {e}", file=sys.stderr)
            return 1
        stop_pid(pid)
        print(f"stopped sshd {pid}")
        if namefile.exists():
            from ..net import remote_ns

            name = namefile.read_text().strip()
            remote_ns.stop_detached(name)
            print(f"removed network namespace {name}")
        return 0
    extra = argv[2:]
    shell = None
    if "--shell" in extra:
        at = extra.index("--shell")
        if at + 1 >= len(extra) or "--netns" not in extra:
            print(USAGE, file=sys.stderr)
            return 2
        shell = extra[at + 1]
        del extra[at:at + 2]
    if extra not in ([], ["--netns"]):
        print(USAGE, file=sys.stderr)
        return 2
    fields: list[tuple[str, object]] = []
    try:
        if extra:
            from ..net import remote_ns

            workdir.mkdir(parents=True, exist_ok=True)
            name = f"{NETNS_PREFIX}{os.getpid()}"
            (workdir / "netns").write_text(name + "\n")
            remote = remote_ns.detached(name, workdir, shell)
            assert remote.sshd is not None
            sshd = remote.sshd
            fields = [("SSHD_NETNS", name), ("SSHD_LOCAL_ADDR6", remote.here6),
                      ("SSHD_REMOTE_ADDR6", remote.there6)]
        else:
            sshd = start(workdir, detach=True)
    except (SshdError, OSError, subprocess.CalledProcessError, RuntimeError) as e:  # NetError: ip said why
        print(f"sshd start: {e}", file=sys.stderr)
        return 1
    for name, value in (("SSHD_PORT", sshd.port), ("SSHD_PID", sshd.pid), ("SSHD_USER", sshd.user),
                        ("SSHD_KEY", sshd.key), ("SSHD_KNOWN_HOSTS", sshd.known_hosts),
                        ("SSHD_SSH_CONFIG", sshd.ssh_config), ("SSHD_URL", sshd.url), *fields):
        print(f"{name}={shlex.quote(str(value))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
