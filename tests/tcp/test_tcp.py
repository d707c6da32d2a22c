"""tests/tcp: every TCP case in relay and echo variants, copy and splice modes."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import skip_without_ipv6
from harness.cases import Case
from harness.run import CaseFailure, Settings, WaitTimeout, run_case
from harness.targets.base import Target, host_system

from .cases import IN_FLIGHT_LOSS, LINUX_HOST_DIFFERS, TCP_CASES

pytestmark = pytest.mark.tcp

VARIANTS = [(case, variant) for case in TCP_CASES for variant in ("relay", "echo")]


@pytest.mark.parametrize(("case", "variant"), VARIANTS, ids=[f"{c.id}-{v}" for c, v in VARIANTS])
def test_tcp(case: Case, variant: str, mode: str, settings: Settings, logdir: Path,
             target: Target, request: pytest.FixtureRequest) -> None:
    # Copy mode is the user-space reference and does not depend on the personality;
    # a personality reason only stops the splice mode.
    reason = case.skip.get(settings.personality)
    if reason and mode == "splice":
        pytest.skip(f"{settings.personality}: {reason}")
    if variant == "echo":
        why = case.echo_skip_reason()
        if why:
            pytest.skip(f"echo: {why}")
    skip_without_ipv6(case, target)
    differs = LINUX_HOST_DIFFERS.get((case.id, "")) or LINUX_HOST_DIFFERS.get((case.id, variant))
    # where the relay runs decides, not what the splicer is called: Linux TCP is Linux TCP
    # under the emulation, ByteCopySplicer or a user's class alike
    if differs and host_system(target) == "Linux":
        kind, why = differs
        # a race cannot be a strict expected failure: it may go either way
        request.applymarker(pytest.mark.xfail(
            reason=f"Linux host TCP: {why}", strict=not why.startswith("RACY"),
            # a race may show as either a wrong log or a role that never ends as expected
            raises=(CaseFailure, WaitTimeout) if why.startswith("RACY")
            else CaseFailure if kind == "check" else WaitTimeout))
    in_flight = IN_FLIGHT_LOSS.get((case.id, variant))
    if in_flight and mode == "splice":
        request.applymarker(pytest.mark.xfail(reason=in_flight, strict=False, raises=CaseFailure))
    run_case(case, mode, variant, settings, logdir, target)
