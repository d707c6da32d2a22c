"""tests/loop: chains and loops of splices (upstream loop/), each an API script in one process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import require_all
from harness.cases import ApiCase
from harness.run import Settings, run_api_case
from harness.targets.base import Target

from .cases import BCAST, LOOP_CASES, bcast
from .netns import Netns, NetnsTarget, NetnsUnavailable

pytestmark = pytest.mark.loop

BAR_ON_LINUX = (
    "bcast.pl's second half cannot run on Linux: 'bar' from the socket bound to "
    "255.255.255.255 leaves with the interface address as its source, and the client socket, "
    "connected to 255.255.255.255, accepts no datagram from that address, so Linux delivers "
    "it to no socket; the first half ran and passed"
)


def test_upstream_count() -> None:
    assert len(LOOP_CASES) + 1 == 33, f"upstream loop/ has 33 targets, the table has {len(LOOP_CASES) + 1}"


@pytest.mark.parametrize("case", LOOP_CASES, ids=[c.id for c in LOOP_CASES])
def test_loop(case: ApiCase, settings: Settings, logdir: Path, target: Target) -> None:
    reason = case.skip.get(settings.personality)
    if reason:
        pytest.skip(f"{settings.personality}: {reason}")
    run_api_case(case, settings, logdir, target)


def make_netns() -> Netns:
    try:
        return Netns()
    except NetnsUnavailable as e:
        if require_all():
            pytest.fail(f"bcast needs a network namespace on Linux: {e}")
        pytest.skip(f"bcast needs a network namespace on Linux: {e}")


def test_bcast(settings: Settings, logdir: Path, target: Target) -> None:
    """On a BSD the script runs as upstream's; on Linux inside a namespace, first half only."""
    reason = BCAST.skip.get(settings.personality)
    if reason:
        pytest.skip(f"{settings.personality}: {reason}")
    if target.name != "local":
        if getattr(target, "backend", "native") != "native":
            pytest.skip("bcast on a remote host that emulates splicing (Linux) would need a network "
                        "namespace there with a broadcast interface; this suite makes those only locally")
        run_api_case(BCAST, settings, logdir, target)
        return
    if os.uname().sysname != "Linux":
        run_api_case(BCAST, settings, logdir, target)
        return
    ns = make_netns()
    try:
        run_api_case(bcast(halves=()), settings, logdir, target=NetnsTarget(ns))
    finally:
        ns.remove()
    pytest.skip(BAR_ON_LINUX)
