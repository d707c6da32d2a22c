"""Fixtures shared by the selftests that need a real sshd."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

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


@pytest.fixture(scope="module")
def netns_remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A remote across a link: an sshd inside a network namespace made for the module, joined
    to this machine by a veth pair (192.0.2.x and 2001:db8:..., harness/net/remote_ns.py),
    removed afterwards."""
    from harness.net.netns import NetError, missing_capability
    from harness.net.remote_ns import RemoteNamespace

    why = available() or missing_capability()
    if why:
        if require_all():
            pytest.fail(f"SPLICE_REQUIRE_ALL=1: no sshd in a namespace: {why}")
        pytest.skip(f"no sshd in a namespace: {why}")
    remote = RemoteNamespace()
    try:
        remote.open()
        remote.start_sshd(tmp_path_factory.mktemp("nssshd"))
    except (NetError, SshdError) as e:
        remote.close()
        pytest.fail(f"sshd in a namespace: {e}")
    try:
        yield remote
    finally:
        remote.close()


@pytest.fixture(scope="module")
def netns_sshd(netns_remote: Any) -> LoopbackSshd:
    sshd: LoopbackSshd = netns_remote.sshd
    return sshd
