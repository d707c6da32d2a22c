"""The suite's own mutation check: every deliberately wrong splicer makes some case fail.

Each mutant is loaded the way a user loads a splicer, `--splice-backend
module:Class`, in a pytest run of the cases that must catch it. The run must
fail, and the failures must be the cases named here (not a crash elsewhere).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# mutant -> pytest selections (node ids) of which at least one must fail
CATCHERS: dict[str, list[str]] = {
    "MaxOffByOne": ["tests/api/test_api.py::test_api[max-efbig]"],
    "EfbigMissing": ["tests/api/test_api.py::test_api[max-efbig]", "tests/api/test_api.py::test_api[udp-max-efbig]"],
    "IdleIgnored": ["tests/api/test_api.py::test_api[idle-etimedout]"],
    "EprotoSucceeds": ["tests/api/test_api.py::test_api[unsplice-EPROTO]"],
    "LengthOffByOne": ["tests/api/test_api.py::test_api[move-counter]"],
    "UrgentAsNormal": ["tests/api/test_api.py::test_api[oobinline-urgent]"],
    "ReadReturnsData": ["tests/api/test_api.py::test_api[spliced-source-hidden]"],
    "NeverEof": ["tests/api/test_api.py::test_api[eof]"],
    "IgnoreMax": ["tests/relayd/test_relayd.py", "-k", "splice and (http-persistent or http-contentlength)"],
    "SplitDatagrams": ["tests/udp/test_udp.py", "-k", "splice and (default or multi)"],
    "MergeDatagrams": ["tests/udp/test_udp.py", "-k", "splice and (sleep-relay or max-multi)"],
    "EfbigWhenNotFit": ["tests/udp/test_udp.py", "-k", "splice and (max-nosplit or max-multi)"],
    "NoEmsgsize": ["tests/udp/test_udp.py", "-k", "splice and nospace"],
    "NoLoopDetection": ["tests/api/test_api.py::test_api[ELOOP]", "tests/api/test_api.py::test_api[udp-ELOOP]"],
}


def run_with(mutant: str, selection: list[str]) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
           f"--splice-backend=tests.selftest.mutants:{mutant}", "-o", "addopts=", *selection]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.selftest
@pytest.mark.parametrize("mutant", sorted(CATCHERS))
def test_mutant_is_caught(mutant: str) -> None:
    result = run_with(mutant, CATCHERS[mutant])
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr
    assert result.returncode == 1, (
        f"{mutant}: expected the cases {CATCHERS[mutant]} to fail (pytest exit 1), "
        f"got exit {result.returncode}: {summary}"
    )
    assert re.search(r"\d+ failed", summary), f"{mutant}: no failed case in: {summary}"
