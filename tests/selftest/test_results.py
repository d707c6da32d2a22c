"""harness/results: the table of a run, each outcome in its cell, on the terminal and as JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CASES = textwrap.dedent('''
    import pytest

    class Case:
        def __init__(self, id):
            self.id = id

    CASES = [Case("good"), Case("bad"), Case("skipped"), Case("expected")]

    @pytest.mark.parametrize("mode", ["copy", "splice"])
    @pytest.mark.parametrize("variant", ["relay", "echo"])
    @pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
    def test_case(case, variant, mode):
        if case.id == "bad" and mode == "splice" and variant == "echo":
            assert False, "the wrong answer"
        if case.id == "skipped":
            pytest.skip("cannot run here")
        if case.id == "expected" and mode == "splice":
            pytest.xfail("a known difference")

    def test_plain():
        pass
''')


@pytest.mark.parametrize("workers", [[], ["-p", "xdist", "-n", "2"]], ids=["plain", "xdist"])
def test_table_places_every_outcome(tmp_path: Path, workers: list[str]) -> None:
    suite = tmp_path / "suite"
    (suite / "tests" / "tcp").mkdir(parents=True)
    (suite / "tests" / "tcp" / "test_cases.py").write_text(CASES)
    (suite / "conftest.py").write_text('pytest_plugins = ["harness.results"]\n')
    report = tmp_path / "report.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider",
                           *workers, f"--splice-report={report}", "tests"], cwd=suite, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout[-3000:]
    cells = {(r["case"], r["mode"], r["variant"]): r["outcome"] for r in json.loads(report.read_text())["results"]}
    assert cells[("bad", "splice", "echo")] == "failed"
    assert cells[("bad", "copy", "echo")] == "passed"
    assert cells[("good", "splice", "relay")] == "passed"
    assert cells[("skipped", "copy", "relay")] == "skipped"
    assert cells[("expected", "splice", "relay")] == "xfailed"
    assert cells[("expected", "copy", "relay")] == "passed"
    assert cells[("test_plain", "-", "-")] == "passed"
    assert len(cells) == 17, sorted(cells)
    out = done.stdout
    assert "splice results: case x mode x variant" in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.startswith("  ")}
    header = next(line.split()[1:] for line in out.splitlines() if line.startswith("tcp "))
    assert header == ["-", "copy/echo", "copy/relay", "splice/echo", "splice/relay"], header
    assert rows["bad"] == [".", "P", "P", "F", "P"], rows
    assert rows["expected"] == [".", "P", "P", "x", "x"], rows
    assert "skipped" not in rows, "skips are counted per column, not listed row by row"
    counts = next(line.split()[1:] for line in out.splitlines() if line.startswith("  (counts)"))
    # per column (-, copy/echo, copy/relay, splice/echo, splice/relay), the worst outcome first
    assert counts == ["1P", "3P", "1s", "3P", "1s", "1F", "1P", "1x", "1s", "2P", "1x", "1s"], counts
    assert "good" not in rows, "a row that passed everywhere is left out of the terminal table"
