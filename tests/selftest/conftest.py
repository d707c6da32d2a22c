"""Fixtures shared by the selftests that need a real sshd."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from conftest import require_all
from harness.targets.sshd import LoopbackSshd, SshdError, available, start


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackSshd]:
    """A throwaway sshd on 127.0.0.1 for one test module, ended by its pid afterwards.

    Without sshd or root the tests that use it skip with the reason (SPLICE_REQUIRE_ALL=1: fail).
    """
    why = available() or (None if os.geteuid() == 0 else "the loopback sshd logs in as root")
    if why:
        if require_all():
            pytest.fail(f"SPLICE_REQUIRE_ALL=1: no loopback sshd: {why}")
        pytest.skip(f"no loopback sshd: {why}")
    try:
        server = start(tmp_path_factory.mktemp("sshd"))
    except SshdError as e:
        pytest.fail(f"loopback sshd: {e}")
    try:
        yield server
    finally:
        server.stop()
