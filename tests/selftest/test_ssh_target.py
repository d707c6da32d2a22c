"""The ssh target: URL parsing, one-line infrastructure errors, and nothing left on the remote.

The end-to-end tests start their own sshd on 127.0.0.1 (harness.targets.sshd) and
run nested pytest sessions through it. Without sshd (or without root, which the
throwaway sshd logs in as) they skip with the reason; under SPLICE_REQUIRE_ALL=1
they fail instead.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.targets.base import InfrastructureError
from harness.targets.ssh import SshHost, SshTarget, SshUrl, classify, parse_target, pick
from harness.targets.sshd import LoopbackSshd

pytestmark = pytest.mark.selftest

ROOT = Path(__file__).resolve().parents[2]


def alone_in_this_run() -> bool:
    """No other worker of this run starts nested runs, whose sweep could take a leftover first."""
    return os.environ.get("PYTEST_XDIST_WORKER") is None


def signals_as_at_a_terminal() -> None:
    """The nested run takes SIGINT, SIGTERM and SIGHUP as a run started at a terminal does.

    A run started in the background by a shell without job control inherits SIGINT
    ignored, and Python then installs no KeyboardInterrupt handler: Ctrl-C would do nothing.
    """
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


# ---- pure parts


@pytest.mark.parametrize(("text", "want"), [
    ("local", None),
    ("", None),
    ("ssh://obsd-vm", [SshUrl(None, "obsd-vm", None)]),
    ("ssh://root@10.0.0.2:2222", [SshUrl("root", "10.0.0.2", 2222)]),
    ("ssh://root@[::1]:22", [SshUrl("root", "::1", 22)]),
    ("ssh://a,ssh://u@b:23", [SshUrl(None, "a", None), SshUrl("u", "b", 23)]),
])

def test_parse_target(text: str, want: list[SshUrl] | None) -> None:
    assert parse_target(text) == want


@pytest.mark.parametrize("text", [
    "ssh://", "http://host", "ssh://host:0", "ssh://host:99999", "ssh://-oProxyCommand=x",
    "ssh://host;rm", "ssh://user@host/path/x", "ssh://a,,ssh://b",
])
def test_parse_target_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="--splice-target"):
        parse_target(text)


def test_url_round_trip() -> None:
    for text in ("ssh://root@[::1]:22", "ssh://obsd-vm", "ssh://u@h:2"):
        urls = parse_target(text)
        assert urls is not None and str(urls[0]) == text


def test_workers_spread_over_hosts() -> None:
    hosts = ["a", "b", "c"]
    assert [pick(hosts, f"gw{i}") for i in range(7)] == ["a", "b", "c", "a", "b", "c", "a"]
    assert pick(hosts, None) == "a"
    assert pick(hosts, "master") == "a"


URL = SshUrl("root", "obsd-vm", 2222)


@pytest.mark.parametrize(("output", "says"), [
    ("ssh: connect to host obsd-vm port 2222: Connection refused", "host unreachable"),
    ("ssh: connect to host obsd-vm port 2222: Connection timed out", "host unreachable"),
    ("ssh: Could not resolve hostname obsd-vm: Name or service not known", "host unreachable"),
    ("No ED25519 host key is known for [obsd-vm]:2222 and you have requested strict checking.\r\n"
     "Host key verification failed.", "ssh-keyscan -p 2222 obsd-vm"),
    ("Host key verification failed.", "StrictHostKeyChecking=accept-new"),
    ("root@obsd-vm: Permission denied (publickey).", "--splice-ssh-option=-i"),
    ("@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@", "ssh-keygen -R obsd-vm"),
])
def test_classify_is_one_line(output: str, says: str) -> None:
    line = classify(URL, output, 255)
    assert says in line
    assert "\n" not in line
    assert line.startswith("ssh://root@obsd-vm:2222")


def test_unreachable_host_is_one_line_and_quick() -> None:
    with socket.socket() as s:  # a port nobody listens on: bound, never listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        began = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/api",
             f"--splice-target=ssh://root@127.0.0.1:{port}"],
            cwd=ROOT, capture_output=True, text=True, timeout=60)
        took = time.monotonic() - began
    assert done.returncode != 0
    assert took < 15, f"took {took:.1f} s"
    for stream in (done.stdout, done.stderr):
        said = [line for line in stream.splitlines() if "unreachable" in line]
        assert len(said) == 1, stream
        assert f"127.0.0.1:{port}" in said[0]
    assert "passed" not in done.stdout and "Traceback" not in done.stdout + done.stderr


# ---- against a real sshd on loopback


def remote_processes(directory: str) -> list[str]:
    """Processes on this (loopback remote) machine whose command line names the directory."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if directory in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


def test_unknown_host_key_says_how_to_accept(sshd: LoopbackSshd, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    urls = parse_target(sshd.url)
    assert urls
    host = SshHost(urls[0], ["-i", str(sshd.key), "-o", f"UserKnownHostsFile={empty}", "-F", "/dev/null"])
    with pytest.raises(InfrastructureError) as info:
        host.open()
    host.close()
    message = str(info.value)
    assert "host key is not known" in message and "ssh-keyscan" in message
    assert "accept-new" in message and "\n" not in message


def test_role_runs_remotely_and_is_killed_by_remote_pid(sshd: LoopbackSshd, tmp_path: Path) -> None:
    urls = parse_target(sshd.url)
    assert urls
    host = SshHost(urls[0], sshd.ssh_options())
    remote = host.open()
    try:
        assert remote.sysname == os.uname().sysname and remote.backend == "emulated"
        assert Path(remote.directory, "harness", "agent.py").is_file()
        target = SshTarget(remote, sshd.ssh_options(), "127.0.0.1", "127.0.0.1", host=host)
        # a relay with nobody to accept: it waits forever, until killed
        relay = target.spawn("relay", {"role": "relay", "protocol": "tcp", "mode": "splice",
                                       "connect": ["127.0.0.1", 9], "scale": 1.0}, tmp_path)
        event = relay.wait_event("hello", lambda e: e.get("event") == "hello", 20)
        relay.wait_event("listening", lambda e: e.get("event") == "listening", 20)
        pid = int(event["pid"])
        assert pid != relay.pid, "the agent's pid is the remote one, not the local ssh"
        assert any(p.startswith(f"{pid}:") for p in remote_processes(remote.directory))
        assert Path(remote.directory, "pids", str(pid)).exists()
        relay.kill()
        assert not any(p.startswith(f"{pid}:") for p in remote_processes(remote.directory))
        assert relay.returncode == -signal.SIGKILL, "the remote end says how the role ended"
    finally:
        note = host.close()
    assert not note
    assert not Path(remote.directory).exists()


def nested(sshd: LoopbackSshd, *args: str) -> list[str]:
    options = [f"--splice-ssh-option={o}" for o in sshd.ssh_options()]
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA",  # the header names the agent directory
            f"--splice-target={sshd.url}", *options, *args]


AGENT_DIR = re.compile(r"agent in (/\S+)")


@pytest.fixture
def local_tmp() -> Iterator[dict[str, str]]:
    """The nested run's environment: its own TMPDIR, so that its ssh masters (whose title is
    their control socket) can be told apart from those of any other run on this machine. Short,
    under /tmp: a control socket path must fit in a sockaddr_un (about 100 bytes)."""
    tmp = tempfile.mkdtemp(prefix="ssp", dir="/tmp")
    try:
        yield {**os.environ, "TMPDIR": tmp}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def no_masters_left(env: dict[str, str]) -> None:
    deadline = time.monotonic() + 5
    while remote_processes(env["TMPDIR"]):
        assert time.monotonic() < deadline, f"ssh masters left: {remote_processes(env['TMPDIR'])}"
        time.sleep(0.05)  # a master asked to exit is on its way out: wait, with a deadline


def passed_and_left_nothing(done: subprocess.CompletedProcess[str], passed: int,
                            env: dict[str, str]) -> None:
    """A nested run through the sshd passed `passed` tests and left no agent directory,
    remote process or master connection behind."""
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert re.search(rf"\b{passed} passed\b", done.stdout), done.stdout[-2000:]
    dirs = AGENT_DIR.findall(done.stdout)
    assert dirs, f"no 'agent in DIR' in the report header:\n{done.stdout[:2000]}"
    for directory in dirs:
        assert not Path(directory).exists(), f"{directory} left on the remote"
        assert not remote_processes(directory)
    no_masters_left(env)


@pytest.mark.parametrize("xdist", [["-n", "0"], ["-n", "2"]], ids=["single", "xdist"])
def test_run_leaves_nothing(sshd: LoopbackSshd, xdist: list[str],
                            local_tmp: dict[str, str]) -> None:
    tests = ["tests/api/test_api.py::test_api[EBUSY]", "tests/tcp/test_tcp.py::test_tcp[splice-default-relay]",
             "tests/tcp/test_tcp.py::test_tcp[copy-default-echo]", "tests/udp/test_udp.py::test_udp[splice-default]"]
    env = local_tmp
    done = subprocess.run(nested(sshd, *xdist, *tests), cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=env)
    passed_and_left_nothing(done, 4, env)


@pytest.mark.parametrize(("how", "xdist", "where"), [
    ("SIGINT", ["-n", "0"], "sshd"), ("SIGINT", ["-n", "2"], "sshd"), ("SIGTERM", ["-n", "0"], "sshd"),
    ("SIGHUP", ["-n", "2"], "sshd"), ("SIGKILL", ["-n", "0"], "sshd"), ("SIGKILL", ["-n", "2"], "sshd"),
    ("SIGINT", ["-n", "2"], "netns_sshd"),
], ids=["sigint-single", "sigint-xdist", "sigterm-single", "sighup-xdist", "sigkill-single", "sigkill-xdist",
        "sigint-xdist-across-a-link"])
def test_run_end_leaves_nothing(request: pytest.FixtureRequest, how: str, xdist: list[str], where: str,
                                local_tmp: dict[str, str]) -> None:
    """However the run ends, no remote agent or master outlives it; after SIGKILL, which leaves
    no time for a cleanup, the next run against the target removes the directory and says so.
    Across a link (an sshd in a namespace) the same, with the addresses from the connection."""
    sshd: LoopbackSshd = request.getfixturevalue(where)
    # scale 10: the relay sleeps for tens of seconds, so the signal finds it running
    args = nested(sshd, *xdist, "--splice-time-scale=10", "--splice-modes=splice",
                  "tests/tcp/test_tcp.py::test_tcp[splice-sleep-relay-relay]",
                  "tests/tcp/test_tcp.py::test_tcp[splice-smallbuf-sleep-relay-relay]")
    env = local_tmp
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True, env=env, preexec_fn=signals_as_at_a_terminal)
    assert proc.stdout is not None
    header = ""
    directory = None
    deadline = time.monotonic() + 60
    try:
        while directory is None and time.monotonic() < deadline:  # the header names the directory
            line = proc.stdout.readline()
            if not line:
                break
            header += line
            m = AGENT_DIR.search(line)
            if m:
                directory = m.group(1)
        assert directory, f"no agent directory in the header:\n{header}"
        while not remote_processes(directory + "/sosplice_agent.py"):
            assert time.monotonic() < deadline, "no remote agent started within 60 s"
            if proc.poll() is not None:
                rest = proc.stdout.read()
                pytest.fail(f"the run ended before an agent started:\n{header}{rest[-3000:]}")
            time.sleep(0.05)  # polling the process table for the agent, with a deadline
        if how == "SIGINT":
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C at a terminal does
        else:
            os.kill(proc.pid, getattr(signal, how))  # the controller alone, as timeout(1) or kill(1)
        try:
            rest, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            rest, _ = proc.communicate()
            pytest.fail(f"the run still ran 60 s after {how}; its output:\n{header}{rest[-4000:]}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode != 0
    if how == "SIGINT":
        assert "Interrupted" in rest or "KeyboardInterrupt" in rest, rest[-2000:]
    elif how != "SIGKILL":
        assert proc.returncode == pytest.ExitCode.INTERRUPTED, rest[-2000:]
        assert f"run ended by {how}" in rest, rest[-2000:]
    gone = time.monotonic() + 10
    while remote_processes(directory):  # after SIGKILL: the ssh sessions' end ends the agents
        assert time.monotonic() < gone, f"remote processes left after {how}: {remote_processes(directory)}"
        time.sleep(0.05)  # the process table has no event to wait on: look again shortly
    no_masters_left(env)
    if how != "SIGKILL":
        assert not Path(directory).exists(), f"{directory} left on the remote after {how}\n{rest[-2000:]}"
        return
    assert Path(directory).exists(), "SIGKILL leaves no time for a cleanup: where did the directory go?"
    done = subprocess.run(nested(sshd, "-n", "0", "tests/api/test_api.py::test_api[EBUSY]"), cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env=env)
    swept = [line for line in done.stdout.splitlines() if line.startswith("sweep: ") and directory in line]
    assert not Path(directory).exists(), f"the next run did not remove {directory}"
    # the sweep of any run may take it: a nested run of another worker can be first
    assert swept or not alone_in_this_run(), f"the next run did not say it removed {directory}:\n{done.stdout[-2000:]}"
    passed_and_left_nothing(done, 1, env)


@pytest.mark.parametrize(("sysname", "says"), [("OpenBSD", "pkg_add python3"), ("FreeBSD", "pkg install python3")])
def test_remote_without_python3(monkeypatch: pytest.MonkeyPatch, sysname: str, says: str) -> None:
    from harness.targets.ssh import SshConnection

    def probe(self: SshConnection, command: str) -> str:
        return f"banner\nSOSPLICE-PROBE\n{sysname}\n7.6\namd64\nno-python3\n"

    monkeypatch.setattr(SshConnection, "open", probe)
    with pytest.raises(InfrastructureError, match=re.escape(says)):
        SshHost(URL, []).open()


def test_dead_master_is_one_line(sshd: LoopbackSshd, tmp_path: Path) -> None:
    urls = parse_target(sshd.url)
    assert urls
    host = SshHost(urls[0], sshd.ssh_options())
    remote = host.open()
    try:
        target = SshTarget(remote, sshd.ssh_options(), "127.0.0.1", "127.0.0.1", host=host)
        assert host.conn.master_pid is not None
        os.kill(host.conn.master_pid, signal.SIGKILL)  # the master this test started
        deadline = time.monotonic() + 10
        while host.conn.alive():
            assert time.monotonic() < deadline, "the killed master still answers"
            time.sleep(0.05)  # waiting for the kill to take effect, with a deadline
        with pytest.raises(InfrastructureError, match="master connection is gone") as info:
            target.spawn("api", {"role": "api", "script": []}, tmp_path)
        assert "\n" not in str(info.value)
        assert "left on the remote" in host.close()
    finally:
        host.close()
        if Path(remote.directory).is_dir():  # loopback: the remote directory is local
            shutil.rmtree(remote.directory)


# the shells of OpenBSD's and FreeBSD's /bin/sh family that this machine has (mksh: pdksh's)
SHELLS = sorted({os.path.realpath(sh): sh for sh in ("/bin/sh", "/bin/mksh", "/bin/ksh", "/usr/bin/mksh")
                 if Path(sh).exists()}.values())


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(("names", "chosen"), [
    (["python3", "python3.12"], "python3"), (["python3.9", "python3.12", "python3.11"], "python3.12"),
    ([], None)], ids=["python3", "newest-python3.N", "none"])
def test_probe_finds_an_interpreter(shell: str, names: list[str], chosen: str | None, tmp_path: Path) -> None:
    """The remote probe takes python3, else the newest python3.N, under a stock BSD's PATH (a stub)."""
    from harness.targets.ssh import PROBE

    for name in names:
        (tmp_path / name).symlink_to(sys.executable)
    for tool in ("uname",):
        (tmp_path / tool).symlink_to(shutil.which(tool) or "/bin/uname")
    done = subprocess.run([shell, "-c", PROBE], capture_output=True, text=True, timeout=30,
                          env={"PATH": str(tmp_path), "HOME": str(tmp_path)})
    lines = done.stdout.split("SOSPLICE-PROBE", 1)[-1].split()
    if chosen is None:
        assert lines[3:] == ["no-python3"], done.stdout + done.stderr
    else:
        assert lines[4:5] == [str(tmp_path / chosen)], f"{shell}: {done.stdout}{done.stderr}"


# OpenBSD's ps without a tty: the command line cut at 79 columns, unless -ww
PS_STUB = """#!/bin/sh
wide=no
for a in "$@"; do [ "$a" = "-ww" ] && wide=yes; done
if [ "$wide" = yes ]; then exec {ps} "$@"; fi
{ps} "$@" | cut -c1-79
"""


@pytest.mark.parametrize("shell", SHELLS)
def test_ctl_kill_matches_a_long_command_line(shell: str, tmp_path: Path) -> None:
    """ctl.sh finds our agent by its directory in the command line, past 79 columns (ps -ww)."""
    from harness.targets.ssh import CTL_SH

    d = tmp_path / ("remote-directory-with-a-long-name-" + "x" * 60)
    d.mkdir()
    (d / "ctl.sh").write_text(CTL_SH)
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "ps").write_text(PS_STUB.format(ps=shutil.which("ps") or "/bin/ps"))
    (stub / "ps").chmod(0o755)
    # a stand-in agent: our interpreter, with the agent's path in its command line
    agent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(d / "sosplice_agent.py")],
                             start_new_session=True)
    try:
        subprocess.run([shell, str(d / "ctl.sh"), "kill", str(agent.pid)], timeout=30, check=True,
                       env={**os.environ, "PATH": f"{stub}:{os.environ['PATH']}"})
        assert agent.wait(10) == -signal.SIGKILL, "ctl.sh kill did not end the agent"
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()


def test_kernel_without_so_splice_stops_the_run(sshd: LoopbackSshd) -> None:
    """A native remote whose kernel cannot splice (played by this Linux) is refused in one line."""
    urls = parse_target(sshd.url)
    assert urls
    host = SshHost(urls[0], sshd.ssh_options())
    remote = host.open()  # Linux: the emulation, no kernel check
    try:
        remote.backend = "native"  # as an OpenBSD kernel without SOCKET_SPLICE would be taken
        with pytest.raises(InfrastructureError) as info:
            host.check_kernel()
        line = str(info.value)
        uname = os.uname()
        assert f"{uname.sysname} {uname.release} has no SO_SPLICE" in line, line
        assert "\n" not in line and "the kernel cannot splice" in line
    finally:
        host.close()
        if Path(remote.directory).is_dir():  # loopback: the remote directory is local
            shutil.rmtree(remote.directory)


# ---- a remote across a link (an sshd in a network namespace)


def test_addresses_come_from_the_connection(netns_sshd: LoopbackSshd, local_tmp: dict[str, str]) -> None:
    """Without address options the run takes both ends of the ssh connection and passes."""
    tests = ["tests/api/test_api.py::test_api[EBUSY]", "tests/tcp/test_tcp.py::test_tcp[splice-default-relay]",
             "tests/udp/test_udp.py::test_udp[splice-default]"]
    done = subprocess.run(nested(netns_sshd, "-p", "no:randomly", "-n", "0", *tests), cwd=ROOT,
                          capture_output=True, text=True, timeout=180, env=local_tmp)
    assert done.returncode == 0 and "3 passed" in done.stdout, done.stdout[-3000:]


@pytest.mark.parametrize(("option", "says"), [
    ("--splice-remote-addr=127.0.0.1", "this machine cannot reach the remote at 127.0.0.1"),
    ("--splice-local-addr=127.0.0.1", "the remote cannot reach this machine at 127.0.0.1"),
], ids=["remote-addr", "local-addr"])
def test_wrong_address_stops_the_run(netns_sshd: LoopbackSshd, local_tmp: dict[str, str], option: str,
                                     says: str) -> None:
    """An address the other side cannot reach stops the run within 15 s, in one line naming the direction."""
    start = time.monotonic()
    done = subprocess.run(nested(netns_sshd, "-p", "no:randomly", "-n", "0", option,
                                 "tests/tcp/test_tcp.py::test_tcp[splice-default-relay]"),
                          cwd=ROOT, capture_output=True, text=True, timeout=60, env=local_tmp)
    took = time.monotonic() - start
    lines = [line for line in (done.stdout + done.stderr).splitlines() if says in line]
    assert done.returncode != 0 and lines, (done.stdout + done.stderr)[-3000:]
    assert took < 15, f"the run took {took:.1f} s to stop"
    assert "Traceback" not in done.stdout + done.stderr


INET6 = ["tests/tcp/test_tcp.py::test_tcp[splice-inet6-relay]", "tests/udp/test_udp.py::test_udp[splice-inet6]"]


def test_inet6_cases_cross_the_link(netns_remote: Any, local_tmp: dict[str, str]) -> None:
    """With the IPv6 pair given, the inet6 cases run across the link, relay on the remote."""
    done = subprocess.run(nested(netns_remote.sshd, "-p", "no:randomly", "-n", "0",
                                 f"--splice-local-addr6={netns_remote.here6}",
                                 f"--splice-remote-addr6={netns_remote.there6}", *INET6),
                          cwd=ROOT, capture_output=True, text=True, timeout=180, env=local_tmp)
    # a relay on the remote's ::1 could not be reached from here: passing means the link was used
    assert done.returncode == 0 and "2 passed" in done.stdout, done.stdout[-3000:]


def test_inet6_cases_skip_without_an_ipv6_path(netns_sshd: LoopbackSshd, local_tmp: dict[str, str]) -> None:
    """Over an IPv4 ssh connection to a remote off loopback, an inet6 case skips with the reason,
    and under SPLICE_REQUIRE_ALL=1 fails."""
    done = subprocess.run(nested(netns_sshd, "-p", "no:randomly", "-n", "0", *INET6), cwd=ROOT,
                          capture_output=True, text=True, timeout=180,
                          env={**local_tmp, "SPLICE_REQUIRE_ALL": "0"})
    assert done.returncode == 0 and "2 skipped" in done.stdout, done.stdout[-3000:]
    assert "no IPv6 path to the remote" in done.stdout
    strict = subprocess.run(nested(netns_sshd, "-p", "no:randomly", "-n", "0", *INET6[:1]), cwd=ROOT,
                            capture_output=True, text=True, timeout=180, env={**local_tmp, "SPLICE_REQUIRE_ALL": "1"})
    assert strict.returncode == 1 and "SPLICE_REQUIRE_ALL=1: no IPv6 path" in strict.stdout, strict.stdout[-3000:]
