"""The relayd cases with their daemon on an ssh target, through a throwaway sshd on 127.0.0.1.

The remote command is our own daemon (`python3 -m harness.relayd`, uploaded with
the agent), which takes relayd's `-dvv -f FILE` and `-n -f FILE`: the same path
that runs `doas relayd` on an OpenBSD VM. Without sshd or root these tests skip
with the reason (SPLICE_REQUIRE_ALL=1: fail), as test_ssh_target.py's.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.relayd.remote import RemoteRelayd, RemoteRelaydProcess
from harness.relayd.run import run_relayd_case
from harness.run import Settings
from harness.targets.base import InfrastructureError
from harness.targets.ssh import SshHost, SshTarget, parse_target
from harness.targets.sshd import LoopbackSshd
from tests.relayd.cases import RELAYD_CASES
from tests.selftest.test_ssh_target import (
    nested,
    no_masters_left,
    passed_and_left_nothing,
    remote_processes,
)

pytestmark = pytest.mark.selftest

ROOT = Path(__file__).resolve().parents[2]
OUR_DAEMON = "python3 -m harness.relayd"
CASES = {c.id: c for c in RELAYD_CASES}



@pytest.fixture
def host(sshd: LoopbackSshd) -> Iterator[tuple[SshHost, SshTarget]]:
    urls = parse_target(sshd.url)
    assert urls
    host = SshHost(urls[0], sshd.ssh_options())
    remote = host.open()
    try:
        yield host, SshTarget(remote, sshd.ssh_options(), "127.0.0.1", "127.0.0.1", host=host)
    finally:
        note = host.close()
        assert not note
    assert not Path(remote.directory).exists(), f"{remote.directory} left on the remote"
    assert not remote_processes(remote.directory), remote_processes(remote.directory)


def test_cases_run_on_the_remote(host: tuple[SshHost, SshTarget], mode: str, tmp_path: Path) -> None:
    """A TCP and an HTTP persistent case (copy and splice: `mode` is parametrized by the conftest),
    the daemon started by the launcher in the agent directory."""
    _, target = host
    remote = RemoteRelayd(target, OUR_DAEMON)
    assert remote.probe() is None
    directory = target.remote.directory
    for case_id in ("default", "http-persistent"):
        logdir = tmp_path / case_id
        logdir.mkdir()
        t = run_relayd_case(CASES[case_id], mode, Settings(), logdir, remote)
        relay = t.logs["relay"]
        # our daemon's splicer on its command line (doas and sudo would clear the environment)
        remote_splicer = f"--splice-backend={target.remote.backend} --splice-personality={target.remote.personality}"
        assert relay[0].startswith(f"execute: python3 -m harness.relayd {remote_splicer} -dvv -f "
                                   f"{directory}/relayd/relayd-"), relay[0]
        assert relay[-1] == "parent terminating"
        assert t.where == f"python3 -m harness.relayd on {target.conn.url}"
        assert t.spliced_reported, "our daemon prints its spliced bytes: that check ran"
        assert (logdir / "relayd.conf").read_text() == t.config_text
        port = re.search(r"listen on 127\.0\.0\.1 port (\d+)", t.config_text)
        assert port and port.group(1) != "0"
        assert f"listening on 127.0.0.1 port {port.group(1)} ({mode})" in "\n".join(relay)
    assert not list(Path(directory, "relayd").iterdir()), "configurations are removed on the remote"
    assert not list(Path(directory, "relayd-pids").iterdir()), "pid records are removed"


def daemon_pid(events: list[dict[str, object]]) -> int:
    """The daemon's pid on the remote, as the launcher reported it."""
    return next(int(str(e["pid"])) for e in events if e.get("event") == "hello")


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[1])


def gone(pid: int, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)  # a signalled daemon on its way out: polled, with a deadline
    return True


def start_daemon(target: SshTarget, logdir: Path) -> RemoteRelaydProcess:
    """Our daemon on the remote, through the launcher, up (its relay_launch line seen)."""
    remote = RemoteRelayd(target, OUR_DAEMON)
    assert remote.probe() is None
    relay = remote.spawn(remote.probe_config(), logdir)
    try:
        relay.wait_log("relay_launch: ", 30)
    except BaseException:
        relay.kill()
        raise
    return relay


def test_lost_controller_stops_the_daemon(host: tuple[SshHost, SshTarget], tmp_path: Path) -> None:
    """The local ssh dies: the launcher sees its stdin end and sends SIGTERM to the daemon."""
    _, target = host
    relay = start_daemon(target, tmp_path)
    try:
        pid = daemon_pid(relay.events)
        assert Path(target.remote.directory, "relayd-pids", str(pid)).exists()
        os.killpg(relay.pid, signal.SIGKILL)  # the local ssh this test started
        assert gone(pid), f"daemon {pid} still running after its controller went away"
    finally:
        relay.kill()


def test_orphaned_daemon_is_ended_by_its_pid(host: tuple[SshHost, SshTarget], tmp_path: Path) -> None:
    """The launcher itself dies: kill() ends the daemon through ctl.sh, by the recorded pid."""
    _, target = host
    relay = start_daemon(target, tmp_path)
    try:
        pid = daemon_pid(relay.events)
        launcher = parent_of(pid)
        assert "sosplice_relayd.py" in Path(f"/proc/{launcher}/cmdline").read_text()
        os.kill(launcher, signal.SIGKILL)  # loopback: the remote launcher is a process here
        with pytest.raises(InfrastructureError, match="status 255"):  # ended without reporting
            relay.wait_exit(30)
        assert Path(f"/proc/{pid}").exists(), "the daemon outlives its launcher"
    finally:
        relay.kill()
    assert gone(pid), f"daemon {pid} not ended by ctl.sh"


@pytest.fixture
def nested_env() -> Iterator[dict[str, str]]:
    """A private TMPDIR (ssh masters told apart by their control path), without SPLICE_REQUIRE_ALL."""
    tmp = tempfile.mkdtemp(prefix="ssr", dir="/tmp")
    env = {k: v for k, v in os.environ.items() if k != "SPLICE_REQUIRE_ALL"}
    try:
        yield {**env, "TMPDIR": tmp}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_run_through_ssh_leaves_nothing(sshd: LoopbackSshd, nested_env: dict[str, str]) -> None:
    args = nested(sshd, "-n", "2", f"--splice-relayd-command={OUR_DAEMON}",
                  "tests/relayd/test_relayd.py", "-k", "default or http-persistent")
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300, env=nested_env)
    passed_and_left_nothing(done, 4, nested_env)
    assert "UncheckedSplicedBytes" not in done.stdout


def test_no_relayd_skips_with_the_reason(sshd: LoopbackSshd, nested_env: dict[str, str]) -> None:
    """The default command (doas relayd; relayd as root) on a Linux remote: every case skips, one reason."""
    args = nested(sshd, "-n", "0", "-rs", "tests/relayd/test_relayd.py", "-k", "default or http-persistent")
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120, env=nested_env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert re.search(r"\b4 skipped\b", done.stdout), done.stdout[-2000:]
    reasons = {line.split(": ", 1)[1] for line in done.stdout.splitlines() if line.startswith("SKIPPED")}
    sysname = os.uname().sysname
    assert len(reasons) == 1, reasons
    reason = reasons.pop()
    assert re.fullmatch(rf"relayd cases need relayd on the target: remote is {sysname}, "
                        r"(no doas, )?no relayd \(set --splice-relayd-command\)", reason), reason
    no_masters_left(nested_env)


@pytest.mark.parametrize(("system", "rules"), [("OpenBSD", "/etc/doas.conf"), ("FreeBSD", "/usr/local/etc/doas.conf")])
def test_doas_refusal_names_the_rules_file(system: str, rules: str, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A doas that refuses `-n kill` (a stub) stops the relayd cases with the host's doas.conf in the line."""
    from harness.relayd import launcher

    for name, body in (("doas", "echo 'doas: Authentication required' >&2; exit 1"), ("relayd", "exit 0")):
        (tmp_path / name).write_text(f"#!/bin/sh\n{body}\n")
        (tmp_path / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    real = os.uname()
    monkeypatch.setattr(os, "uname", lambda: type(real)((system, *real[1:])))
    result = launcher.probe({"argv": [str(tmp_path / "doas"), "relayd"]})
    assert not result["ok"]
    assert f"without password in {rules}" in result["why"], result["why"]
    assert "Authentication required" in result["why"]


def test_relayd_in_service_is_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relayd in service (a listener on its control socket, played here) stops the relayd cases
    with one line; a stale socket file does not, nor does our own daemon."""
    import socket

    from harness.relayd import launcher

    path = str(tmp_path / "relayd.sock")
    monkeypatch.setattr(launcher, "CONTROL_SOCKET", path)
    real = ["doas", "relayd"]
    assert launcher.relayd_in_service(real) == ""  # nothing there
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    try:
        why = launcher.relayd_in_service(real)
        assert f"a relayd in service answers on {path}" in why and "\n" not in why
        assert launcher.relayd_in_service(["python3", "-m", "harness.relayd"]) == ""
    finally:
        server.close()
    assert launcher.relayd_in_service(real) == "", "a stale socket file is no relayd in service"


def test_our_daemon_gets_its_splicer_on_the_command_line() -> None:
    """doas and sudo clear the environment: our daemon's splicer goes on its command line, the
    real relayd's command stays as given."""
    from harness.relayd import launcher

    env = {"SPLICE_BACKEND": "native", "SPLICE_PERSONALITY": "freebsd"}
    ours = launcher.ours_with_settings(["doas", "python3", "-m", "harness.relayd"], {"env": env})
    assert ours == ["doas", "python3", "-m", "harness.relayd", "--splice-backend=native",
                    "--splice-personality=freebsd"]
    assert launcher.ours_with_settings(["doas", "relayd"], {"env": env}) == ["doas", "relayd"]
