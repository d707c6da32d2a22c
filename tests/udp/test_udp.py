"""tests/udp: every UDP case in copy and splice modes (OpenBSD splices UDP; FreeBSD does not)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import skip_without_ipv6
from harness.cases import Case
from harness.run import Settings, run_case
from harness.targets.base import Target

from .cases import UDP_CASES

pytestmark = pytest.mark.udp


@pytest.mark.parametrize("case", UDP_CASES, ids=[c.id for c in UDP_CASES])
def test_udp(case: Case, mode: str, settings: Settings, logdir: Path, target: Target) -> None:
    if settings.personality == "freebsd" and mode == "splice":
        pytest.skip("freebsd: FreeBSD splices TCP only (semantics 5.1)")
    reason = case.skip.get(settings.personality)
    if reason:
        pytest.skip(f"{settings.personality}: {reason}")
    skip_without_ipv6(case, target)
    run_case(case, mode, "relay", settings, logdir, target)
