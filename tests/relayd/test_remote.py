"""The remote relayd path without ssh: the launcher run here, the time scale, the unchecked counts.

The end-to-end tests through a loopback sshd are in tests/selftest/test_relayd_remote.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from harness.relayd.config import RelaydConfig, render
from harness.relayd.remote import parse_command, whole_second_scale
from harness.relayd.run import RelaydTranscript, UncheckedSplicedBytes, check_logs, spliced_lines
from harness.targets.local import ROOT

from .cases import RELAYD_CASES

pytestmark = pytest.mark.relayd
LAUNCHER = ROOT / "harness" / "relayd" / "launcher.py"
CASES = {c.id: c for c in RELAYD_CASES}


@pytest.mark.parametrize(("timeout", "scale", "want"), [
    (3, 0.2, 1 / 3),  # 0.6 s -> 1 s
    (3, 0.5, 2 / 3),  # 1.5 s -> 2 s
    (2, 0.5, 0.5),  # already 1 s
    (3, 1.0, 1.0),
    (2, 0.75, 1.0),  # 1.5 s -> 2 s
    (None, 0.2, 0.2),
])
def test_whole_second_scale(timeout: float | None, scale: float, want: float) -> None:
    got = whole_second_scale(timeout, scale)
    assert got == pytest.approx(want)
    assert got >= scale
    if timeout is not None:
        assert timeout * got == pytest.approx(round(timeout * got))


def test_parse_command() -> None:
    assert parse_command("doas relayd") == ["doas", "relayd"]
    assert parse_command("env 'A=b c' python3 -m harness.relayd") == [
        "env", "A=b c", "python3", "-m", "harness.relayd"]
    for bad in ("", "  ", "'unbalanced"):
        with pytest.raises(ValueError, match="--splice-relayd-command"):
            parse_command(bad)


def test_spliced_lines() -> None:
    lines = ["relay_launch: relay-x listening on 127.0.0.1 port 5 (splice)",
             "relay relay-x, session 2 (1 active), 0, 127.0.0.1 -> 127.0.0.1:9, done",
             "session 2 spliced request 3 response 40", "session 1 spliced request 0 response 7"]
    assert spliced_lines(lines) == [{"id": 2, "request": 3, "response": 40},
                                    {"id": 1, "request": 0, "response": 7}]


def relay_transcript(spliced_reported: bool) -> RelaydTranscript:
    logs = {"client": ["LEN: 251", "MD5: bc3a3f39af35fe5b1687903da2b00c7f"],
            "server": ["LEN: 251", "MD5: bc3a3f39af35fe5b1687903da2b00c7f"],
            "relay": ["relay relay-default, session 1 (1 active), 0, 127.0.0.1 -> 127.0.0.1:9, done"]}
    return RelaydTranscript(logs=logs, sessions=[], config_text="", spliced_reported=spliced_reported,
                            where="relayd on ssh://vm")


def test_unreported_spliced_bytes_skip_only_that_check() -> None:
    case = CASES["default"]
    with pytest.warns(UncheckedSplicedBytes, match=r"default \(splice\): spliced bytes per session not checked"):
        check_logs(case, "splice", relay_transcript(spliced_reported=False))
    check_logs(case, "copy", relay_transcript(spliced_reported=False))  # nothing to say in copy mode
    with pytest.raises(AssertionError, match=r"spliced bytes per session \(request, response\) \[\]"):
        check_logs(case, "splice", relay_transcript(spliced_reported=True))
    broken = relay_transcript(spliced_reported=False)
    broken.logs["server"] = ["LEN: 250", "MD5: x"]
    with pytest.warns(UncheckedSplicedBytes), pytest.raises(AssertionError, match="LEN lines differ"):
        check_logs(case, "splice", broken)  # the other checks still run


# ---- the launcher, run here as the remote runs it


@pytest.fixture
def launcher(tmp_path: Path) -> Path:
    """A copy in a directory of its own, as in the remote's agent directory."""
    path = tmp_path / "sosplice_relayd.py"
    shutil.copy(LAUNCHER, path)
    return path


def config(port: int = 9) -> str:
    return render(RelaydConfig(name="probe", http=True, session_timeout=1, forward=("127.0.0.1", port)))


def probe(launcher: Path, argv: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    spec = {"probe": True, "argv": argv, "config": config(), "env": env or {}}
    done = subprocess.run([sys.executable, "-I", "-S", str(launcher)], input=json.dumps(spec) + "\n",
                          capture_output=True, text=True, timeout=60, check=False)
    events: list[dict[str, Any]] = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["event"] for e in events] == ["probe"], done.stdout + done.stderr
    return events[0]


def fake(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / "bin" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def test_probe_names_missing_programs(launcher: Path, tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere" / "relayd")
    answer = probe(launcher, [missing])
    assert not answer["ok"]
    assert answer["why"] == f"no {missing}"
    doas = fake(tmp_path, "doas", 'shift; exec "$@"')
    answer = probe(launcher, [str(doas), "-u", "root", "relayd-that-is-not-installed"])
    assert answer["why"] == "no relayd-that-is-not-installed"


def test_probe_names_a_refused_doas(launcher: Path, tmp_path: Path) -> None:
    doas = fake(tmp_path, "doas", 'echo "doas: Authorization required" >&2; exit 1')
    answer = probe(launcher, [str(doas), sys.executable])
    assert not answer["ok"]
    assert answer["why"].startswith("'doas -n kill' is refused (doas: Authorization required)")
    assert "/etc/doas.conf" in answer["why"]


def test_probe_runs_the_configuration_check(launcher: Path, tmp_path: Path) -> None:
    doas = fake(tmp_path, "doas", '[ "$1" = -n ] && shift; exec "$@"')
    env = {"PYTHONPATH": str(ROOT)}
    answer = probe(launcher, [str(doas), sys.executable, "-m", "harness.relayd"], env)
    assert answer["ok"], answer
    assert answer["argv"] == [str(doas), sys.executable, "-m", "harness.relayd"]
    answer = probe(launcher, ["/bin/false"])
    assert answer["why"] == "'/bin/false -n -f relayd.conf' failed with status 1: no output"
    assert not list((tmp_path / "relayd").iterdir()), "probe configurations are removed"


def test_launcher_runs_and_stops_the_daemon(launcher: Path, tmp_path: Path) -> None:
    """Port picked, `execute:` line, the daemon's lines as log events, `stop` ends it by SIGTERM."""
    spec = {"argv": [sys.executable, "-m", "harness.relayd"], "config": config(),
            "env": {"PYTHONPATH": str(ROOT)}, "hold": True}
    proc = subprocess.Popen([sys.executable, "-I", "-S", str(launcher)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdin is not None and proc.stdout is not None
    pid = 0
    try:
        proc.stdin.write(json.dumps(spec) + "\n")
        proc.stdin.flush()
        events = []
        for line in proc.stdout:
            events.append(json.loads(line))
            if "relay_launch: " in events[-1].get("text", ""):
                break
        listening = next(e for e in events if e["event"] == "listening")
        pid = next(e for e in events if e["event"] == "hello")["pid"]
        texts = [e["text"] for e in events if e["event"] == "log"]
        conf = tmp_path / "relayd"
        assert texts[0].startswith(f"execute: {sys.executable} -m harness.relayd -dvv -f {conf}/relayd-")
        assert f"listening on 127.0.0.1 port {listening['port']} " in texts[-1]
        assert (tmp_path / "relayd-pids" / str(pid)).read_text() == "\n"
        proc.stdin.write("stop\n")
        proc.stdin.close()
        rest = [json.loads(line) for line in proc.stdout]
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:  # a failed test: end what it started, by pid
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert [e.get("text") for e in rest if e["event"] == "log"] == ["parent terminating"]
    assert rest[-1] == {"event": "remote-exit", "status": 0}
    assert not (tmp_path / "relayd-pids" / str(pid)).exists()
    assert not list(conf.iterdir()), "the configuration is removed with the daemon"
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # the daemon, reaped by the launcher: gone at once; deadline for safety
    assert not Path(f"/proc/{pid}").exists()
