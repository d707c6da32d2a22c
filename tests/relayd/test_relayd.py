"""tests/relayd: the 28 CORE relayd cases, in copy and splice mode, on harness.relayd.

With an ssh target the daemon is --splice-relayd-command on the remote (real
relayd by default; the `relayd_remote` fixture of harness/targets/plugin.py).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness.relayd.remote import RemoteRelayd
from harness.relayd.run import RelaydCase, run_relayd_case
from harness.run import Settings
from harness.splice.api import personality

from .cases import RELAYD_CASES

pytestmark = pytest.mark.relayd
TIMEOUT_SCALE_FLOOR = 0.5
REMOTE_TIMEOUT_SCALE_FLOOR = 1.0


@pytest.mark.parametrize("case", RELAYD_CASES, ids=[c.id for c in RELAYD_CASES])
def test_relayd(case: RelaydCase, mode: str, settings: Settings, logdir: Path,
                relayd_remote: RemoteRelayd | None) -> None:
    if (mode == "splice" and case.config.session_timeout is not None
            and not personality(settings.personality).etimedout):
        pytest.skip(f"{settings.personality}: relayd's session timeout needs an idle splice to end "
                    "with ETIMEDOUT (OpenBSD semantics)")
    # these cases race a session timeout against 1 s steps of the client: at the default scale
    # the margin is 0.2 s, less than a loaded 2-core machine guarantees; with the daemon on a
    # remote (every event crosses ssh, and a link), upstream's own timings: a 1 s margin
    floor = REMOTE_TIMEOUT_SCALE_FLOOR if relayd_remote is not None else TIMEOUT_SCALE_FLOOR
    if case.config.session_timeout is not None and settings.scale < floor:
        settings = dataclasses.replace(settings, scale=floor)
    run_relayd_case(case, mode, settings, logdir, relayd_remote)
