"""tests/api: the SO_SPLICE API cases, each asserting the errno by name for the personality."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cases import ApiCase
from harness.run import CaseFailure, Settings, run_api_case
from harness.targets.base import Target, host_system

from .cases import API_CASES, UPSTREAM

pytestmark = pytest.mark.api


def test_upstream_count() -> None:
    assert len(UPSTREAM) == 19, f"upstream error/ has 19 cases, the table has {len(UPSTREAM)}"


@pytest.mark.parametrize("case", API_CASES, ids=[c.id for c in API_CASES])
def test_api(case: ApiCase, settings: Settings, logdir: Path, target: Target,
             request: pytest.FixtureRequest) -> None:
    reason = case.skip.get(settings.personality)
    if reason:
        pytest.skip(f"{settings.personality}: {reason}")
    if case.linux_host_differs and host_system(target) == "Linux":
        request.applymarker(pytest.mark.xfail(reason=f"Linux host: {case.linux_host_differs}",
                                              strict=True, raises=CaseFailure))
    run_api_case(case, settings, logdir, target)
