"""Role processes and what they fork are gone after kill(); the leftover check sees them otherwise."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness.targets.base import RoleProcess, end_groups, groups_still_alive, surviving_groups

pytestmark = pytest.mark.selftest

FORKER = ("import os, sys, time\n"
          "if os.fork() == 0:\n    time.sleep(60)\n    os._exit(0)\n"
          "sys.stdout.write('{\"event\": \"up\", \"role\": \"x\"}\\n'); sys.stdout.flush()\n"
          "time.sleep(60)\n")


def test_kill_ends_forked_children(tmp_path: Path) -> None:
    proc = RoleProcess("x", [sys.executable, "-c", FORKER], {}, tmp_path)
    proc.wait_up(10)
    group = {proc.pid: "forker"}
    assert surviving_groups(group), "a running role must be reported as surviving"
    proc.kill()
    # the forked child got its SIGKILL with the group; under load it takes a moment to die
    assert not groups_still_alive(group, grace=5), "kill() left a process of the role's group running"


def test_leftover_check_sees_orphans(tmp_path: Path) -> None:
    """A role that exits but leaves a forked child behind is still reported until killed."""
    orphaner = "import os, time\nif os.fork() == 0:\n    time.sleep(60)\n"
    proc = RoleProcess("x", [sys.executable, "-c", orphaner], {}, tmp_path)
    proc.proc.wait(10)
    group = {proc.pid: "orphaner"}
    try:
        assert surviving_groups(group), "the orphaned child must be reported"
    finally:
        end_groups(group)
        proc.kill()
