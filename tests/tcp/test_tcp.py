"""tests/tcp: every TCP case in relay and echo variants, copy and splice modes."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cases import Case
from harness.run import Settings, run_case

from .cases import TCP_CASES

pytestmark = pytest.mark.tcp

VARIANTS = [(case, variant) for case in TCP_CASES for variant in ("relay", "echo")]


@pytest.mark.parametrize(("case", "variant"), VARIANTS, ids=[f"{c.id}-{v}" for c, v in VARIANTS])
def test_tcp(case: Case, variant: str, mode: str, settings: Settings, logdir: Path) -> None:
    reason = case.skip.get(settings.personality)
    if reason:
        pytest.skip(f"{settings.personality}: {reason}")
    if variant == "echo":
        why = case.echo_skip_reason()
        if why:
            pytest.skip(f"echo: {why}")
    run_case(case, mode, variant, settings, logdir)
