"""tests/api: the SO_SPLICE API cases, each asserting the errno by name for the personality."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cases import ApiCase
from harness.run import Settings, run_api_case
from harness.targets.base import Target

from .cases import API_CASES, UPSTREAM

pytestmark = pytest.mark.api


def test_upstream_count() -> None:
    assert len(UPSTREAM) == 19, f"upstream error/ has 19 cases, the table has {len(UPSTREAM)}"


@pytest.mark.parametrize("case", API_CASES, ids=[c.id for c in API_CASES])
def test_api(case: ApiCase, settings: Settings, logdir: Path, target: Target) -> None:
    reason = case.skip.get(settings.personality)
    if reason:
        pytest.skip(f"{settings.personality}: {reason}")
    run_api_case(case, settings, logdir, target)
