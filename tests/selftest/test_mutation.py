"""The suite's own mutation check: every deliberately wrong splicer makes some case fail.

Each mutant is loaded the way a user loads a splicer, `--splice-backend
module:Class`, in a pytest run of the cases that must catch it. The run must
fail, and the failures must be the cases named here (not a crash elsewhere).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.selftest.mutants_api import CATCHERS as API_CATCHERS
from tests.selftest.mutants_conserve import CATCHERS as CONSERVE_CATCHERS
from tests.selftest.mutants_detect import CATCHERS as DETECT_CATCHERS

ROOT = Path(__file__).resolve().parents[2]

# mutant (a class of tests/selftest/mutants.py, or module:Class) -> the pytest selection of
# which at least one case must fail
CATCHERS: dict[str, list[str]] = {
    "tests.packet.mutants:MovesBeforeConnected": [
        "tests/packet/test_scapy.py::test_payload_delay_connect_plain",
        "tests/packet/test_scapy.py::test_oobinline_delay_connect"],
    "tests.packet.mutants:ShutsDrainAtEof": ["tests/packet/test_wire.py", "-k", "no_fin_at_source_eof and splice"],
    "MaxOffByOne": ["tests/api/test_api.py::test_api[max-efbig]"],
    "EfbigMissing": ["tests/api/test_api.py::test_api[max-efbig]", "tests/api/test_api.py::test_api[udp-max-efbig]"],
    "IdleIgnored": ["tests/api/test_api.py::test_api[idle-etimedout]"],
    "EprotoSucceeds": ["tests/api/test_api.py::test_api[unsplice-EPROTO]"],
    "LengthOffByOne": ["tests/api/test_api.py::test_api[move-counter]"],
    "UrgentAsNormal": ["tests/api/test_api.py::test_api[oobinline-urgent]",
                       "tests/tcp/test_tcp.py::test_tcp[splice-oobinline-relay]"],
    "ReadReturnsData": ["tests/api/test_api.py::test_api[spliced-source-hidden]",
                        "tests/tcp/test_tcp.py::test_tcp[splice-relay-read-eof-relay]"],
    "NeverEof": ["tests/api/test_api.py::test_api[eof]", "tests/tcp/test_tcp.py::test_tcp[splice-default-relay]"],
    "IgnoreMax": ["tests/relayd/test_relayd.py", "-k", "splice and (http-persistent or http-contentlength)"],
    "SplitDatagrams": ["tests/udp/test_udp.py", "-k", "splice and (default or multi)"],
    "MergeDatagrams": ["tests/udp/test_udp.py", "-k", "splice and (sleep-relay or max-multi)"],
    "EfbigWhenNotFit": ["tests/udp/test_udp.py", "-k", "splice and (max-nosplit or max-multi)"],
    "NoEmsgsize": ["tests/udp/test_udp.py", "-k", "splice and nospace"],
    "NoLoopDetection": ["tests/api/test_api.py::test_api[ELOOP]", "tests/api/test_api.py::test_api[udp-ELOOP]"],
    "SpliceByDescriptor": ["tests/api/test_api.py::test_api[errata7-dup-source-ebusy]", "tests/api/test_api.py::test_api[errata7-dup-unsplice-length]"],
    "ErrorBeforeEpipe": ["tests/api/test_api.py::test_api[errata5-send-epipe-first]"],
    "ShutDrainIgnored": ["tests/api/test_api.py::test_api[errata6-udp-drain-shut]"],
    "EveryLookRearms": ["tests/api/test_api.py::test_api[errata2-idle-source-wakeup]"],
    "NoSilentWakeups": ["tests/api/test_api.py::test_api[errata2-idle-source-wakeup]", "tests/api/test_api.py::test_api[errata2-idle-drain-wakeup]"],
    "ZeroReadWaits": ["tests/api/test_api.py::test_api[errata3-read-zero-length]"],
    "ReadIgnoresTimeout": ["tests/api/test_api.py::test_api[errata3-read-rcvtimeo]", "tests/api/test_api.py::test_api[errata3-read-timeout]"],
    "DrainWriterWoken": ["tests/api/test_api.py::test_api[errata4-drain-writer-blocked]"],
    "OptionLeftBehind": ["tests/api/test_api.py::test_api[errata8-udp-options-restored]"],
    "ConnectingDrainHoldsEof": ["tests/api/test_api.py::test_api[errata1-eof-drain-connecting]"],
    "FreebsdEofWaitsForDrain": ["--splice-personality=freebsd",
                                "tests/api/test_api.py::test_api[errata11-eof-full-drain]"],
}
CATCHERS.update(API_CATCHERS)  # the wrong argument checks of tests/api/matrix.py
CATCHERS.update(CONSERVE_CATCHERS)  # bytes lost where upstream checks nothing (harness.conservation)
CATCHERS.update(DETECT_CATCHERS)  # reads, timers, the initial move, idle values (tests/api/detection.py)


def run_with(mutant: str, selection: list[str]) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
           f"--splice-backend={mutant if ':' in mutant else 'tests.selftest.mutants:' + mutant}", "-o", "addopts=", *selection]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.selftest
@pytest.mark.parametrize("mutant", sorted(CATCHERS))
def test_mutant_is_caught(mutant: str) -> None:
    if any(sel.startswith("tests/packet") for sel in CATCHERS[mutant]) and os.geteuid() != 0:
        if os.environ.get("SPLICE_REQUIRE_ALL", "") not in ("", "0"):
            pytest.fail("packet cases need root (SPLICE_REQUIRE_ALL=1 forbids skipping them)")
        pytest.skip("the packet cases that catch this mutant need root")
    result = run_with(mutant, CATCHERS[mutant])
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr
    assert result.returncode == 1, (
        f"{mutant}: expected the cases {CATCHERS[mutant]} to fail (pytest exit 1), "
        f"got exit {result.returncode}: {summary}"
    )
    assert re.search(r"\d+ failed", summary), f"{mutant}: no failed case in: {summary}"
