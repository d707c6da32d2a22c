"""The relayd.conf renderer, the parser of the supported subset, and the daemon's command line."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from harness.relayd.config import ConfigError, RelaydConfig, Rule, parse, render
from harness.relayd.run import RelaydCase
from harness.targets.local import ROOT

from .cases import RELAYD_CASES

pytestmark = pytest.mark.relayd


@pytest.mark.parametrize("case", RELAYD_CASES, ids=[c.id for c in RELAYD_CASES])
@pytest.mark.parametrize("relay_mode", ["copy", "splice"])
def test_render_parse_round_trip(case: RelaydCase, relay_mode: str) -> None:
    cfg = dataclasses.replace(case.config.with_mode(relay_mode), name=case.id,
                              forward=("127.0.0.1", 4711))
    text = render(cfg)
    assert ("tcp splice" in text) == (relay_mode == "splice")
    assert parse(text) == cfg


def test_render_text() -> None:
    cfg = RelaydConfig(name="x", http=True, session_timeout=3, socket_buffer=1024,
                       rules=(Rule("block", "request", "path", "/3"),
                              Rule("match", "response", "header", "Content-Length", log=True)),
                       forward=("127.0.0.1", 4711))
    lines = render(cfg).splitlines()
    for want in ('http protocol "proto-x" {', "\ttcp splice", "\ttcp socket buffer 1024",
                 '\tblock request path "/3"', '\tmatch response header log "Content-Length"',
                 "\tforward to 127.0.0.1 port 4711", "\tsession timeout 3", "log connection"):
        assert want in lines, f"{want!r} missing from:\n" + "\n".join(lines)


BAD = [
    ("foo protocol proto {", "invalid protocol type: foo"),
    ("http protocol proto {\n\ttcp frobnicate\n}", "relayd.conf:2: syntax error: tcp frobnicate"),
    ("http protocol proto {\n\tmatch request header value\n}", "relayd.conf:2:"),
    ("relay r {\n\tsession timeout soon\n}", "relayd.conf:2: syntax error: session timeout soon"),
    ("prefork many", "relayd.conf:1: syntax error: prefork many"),
    ("relay r {\n\tlisten on 127.0.0.1 port 0\n", "unexpected end of file"),
]


@pytest.mark.parametrize(("text", "message"), BAD,
                         ids=["type", "tcp-option", "value", "timeout", "prefork", "eof"])
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(text)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def run_cli(tmp_path: Path, text: str, *args: str) -> subprocess.CompletedProcess[str]:
    conf = tmp_path / "relayd.conf"
    conf.write_text(text)
    return subprocess.run([sys.executable, "-m", "harness.relayd", "-f", str(conf), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)


def test_cli_check_ok(tmp_path: Path) -> None:
    done = run_cli(tmp_path, render(RelaydConfig(forward=("127.0.0.1", 4711))), "-n")
    assert done.returncode == 0, done.stderr
    assert "configuration OK" in done.stderr


def test_cli_bad_line(tmp_path: Path) -> None:
    text = render(RelaydConfig(forward=("127.0.0.1", 4711))).replace("tcp nodelay", "tcp turbo")
    done = run_cli(tmp_path, text, "-n")
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "syntax error: tcp turbo" in lines[0] and "relayd.conf:" in lines[0], done.stderr
