"""A splicer class that is not the emulation but answers as it does passes (issue 13).

`tox -e wrapped` runs the whole TCP and UDP categories with it; here a sample:
a Linux-host expected failure (decided by where the relay runs, not by the
backend's name), a spliced max case, a UDP case and an API rule.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from harness.splice import load_splicer
from harness.splice.api import Splicer
from harness.splice.emulated import EmulatedSplicer

ROOT = Path(__file__).resolve().parents[2]
BACKEND = "tests.selftest.wrapped:WrappedEmulation"
SAMPLE = [
    "tests/tcp/test_tcp.py::test_tcp[splice-oob-max-sleep-relay-relay]",
    "tests/tcp/test_tcp.py::test_tcp[splice-max-relay]",
    "tests/udp/test_udp.py::test_udp[splice-max]",
    "tests/api/test_api.py::test_api[errata7-dup-source-ebusy]",
]

pytestmark = pytest.mark.selftest


def test_wrapped_is_a_splicer_and_not_the_emulation() -> None:
    splicer = load_splicer(BACKEND)
    assert isinstance(splicer, Splicer), "WrappedEmulation does not implement the Splicer protocol"
    assert not isinstance(splicer, EmulatedSplicer), "the wrapper must not be an EmulatedSplicer"


def test_wrapped_splices() -> None:
    splicer = load_splicer(BACKEND)
    with socket.create_server(("127.0.0.1", 0)) as lsock:
        port = lsock.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client, \
                socket.create_connection(("127.0.0.1", port)) as drain:
            source, _ = lsock.accept()
            far, _ = lsock.accept()
            with source, far:
                splicer.splice(source, drain, 5)
                client.sendall(b"abcdefgh")
                far.settimeout(10)
                assert far.recv(16) == b"abcde", "the wrapped splice did not move exactly max bytes"
                assert splicer.wait_readable(source, 10), "the source did not become readable at max"
                assert splicer.length(source) == 5


def test_sample_passes_with_a_wrapped_emulation() -> None:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
           "-o", "addopts=", f"--splice-backend={BACKEND}", *SAMPLE]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr
    assert result.returncode == 0, f"with {BACKEND}: exit {result.returncode}: {summary}\n{result.stdout[-3000:]}"
    assert re.search(r"\b1 xfailed", summary) and re.search(r"\b3 passed", summary), (
        f"with {BACKEND}: expected 3 passed and the Linux-host expected failure, got: {summary}")
