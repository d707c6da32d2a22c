"""harness.perf runs end to end and reports well-formed numbers; no timing is asserted here."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.targets.sshd import LoopbackSshd

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.selftest


def test_perf_report_is_well_formed() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "harness.perf", "--seconds", "0.3", "--repeat", "1", "--no-peers", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"harness.perf failed: {result.stderr.strip()}"
    report = json.loads(result.stdout)
    rows = {(r["proto"], r["path"]): r for r in report["results"]}
    for proto in ("tcp", "udp"):
        for path in ("direct", "copy", "splice"):
            row = rows.get((proto, path))
            assert row is not None, f"no {proto} {path} row in the report"
            assert row["gbps"] > 0 and row["gbps_min"] <= row["gbps"] <= row["gbps_max"], row
            assert row["cpu_s_per_gb"] > 0, row
        assert "splice/copy" in report["factors"][proto], f"no splice/copy factor for {proto}"
        direct = rows[(proto, "direct")]
        limit = report["limits"][proto]
        assert limit == (direct["dgrams_per_s"] if proto == "udp" else direct["gbps"]) / 2, (proto, limit)
        assert direct["share_of_limit"] is None, "the direct path is not a relay"
        for path in ("copy", "splice"):
            share = rows[(proto, path)]["share_of_limit"]
            assert isinstance(share, float) and share > 0, (proto, path, share)
    assert "half the direct rate" in report["limit_rule"]
    assert rows[("udp", "splice")]["dgrams_per_s"] > 0
    assert report["meta"]["sockbuf"] == 0, "the default is the kernel's socket buffers"


def test_perf_bad_option_is_one_line() -> None:
    result = subprocess.run([sys.executable, "-m", "harness.perf", "--proto", "sctp"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0
    assert "invalid value(s): sctp" in result.stderr


def test_perf_unreachable_target_is_one_line() -> None:
    result = subprocess.run([sys.executable, "-m", "harness.perf", "--target", "ssh://root@127.0.0.1:1",
                             "--ssh-timeout", "3"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "harness.perf: ssh://root@127.0.0.1:1: host unreachable "
        "(ssh: connect to host 127.0.0.1 port 1: Connection refused)"], result.stderr



def test_perf_relay_runs_on_the_target(sshd: LoopbackSshd) -> None:
    """The relays run on the ssh target (the agent there), report their own CPU, and leave nothing."""
    options = [f"--ssh-option={o}" for o in sshd.ssh_options()]
    result = subprocess.run(
        [sys.executable, "-m", "harness.perf", "--target", sshd.url, *options, "--proto", "tcp",
         "--seconds", "0.3", "--repeat", "1", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"harness.perf failed: {result.stderr.strip()}"
    report = json.loads(result.stdout)
    target = str(report["meta"]["target"])
    m = re.search(r"agent in (\S+)$", target)
    assert target.startswith(f"{sshd.url}: ") and m, target
    assert not Path(m.group(1)).exists(), f"{m.group(1)} left on the remote"
    rows = {r["path"]: r for r in report["results"]}
    assert set(rows) == {"direct", "copy", "splice"}, "no peers with a target: they would run here"
    for path in ("copy", "splice"):
        assert rows[path]["gbps"] > 0 and rows[path]["cpu_s_per_gb"] > 0, rows[path]


def test_udp_is_not_measured_on_a_freebsd_target() -> None:
    """A FreeBSD target splices TCP only: its UDP rows are left out with the reason, TCP stays."""
    from types import SimpleNamespace

    from harness.perf.__main__ import unsupported

    freebsd = SimpleNamespace(remote=SimpleNamespace(personality="freebsd", sysname="FreeBSD"))
    openbsd = SimpleNamespace(remote=SimpleNamespace(personality="openbsd", sysname="OpenBSD"))
    assert unsupported("udp", freebsd) == "FreeBSD splices TCP only (semantics 5.1)"
    assert unsupported("tcp", freebsd) == ""
    assert unsupported("udp", openbsd) == ""
    assert unsupported("udp", None) == ""
