"""harness.perf runs end to end and reports well-formed numbers; no timing is asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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
    assert rows[("udp", "splice")]["dgrams_per_s"] > 0
    assert report["meta"]["sockbuf"] == 0, "the default is the kernel's socket buffers"


def test_perf_bad_option_is_one_line() -> None:
    result = subprocess.run([sys.executable, "-m", "harness.perf", "--proto", "sctp"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0
    assert "invalid value(s): sctp" in result.stderr
