"""Roles as local subprocesses: `python -m harness.agent` from this checkout."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from .base import RoleProcess

ROOT = Path(__file__).resolve().parents[2]


class LocalTarget:
    name = "local"

    def __init__(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["SPLICE_PARENT_PID"] = str(os.getpid())  # the agent ends with us (agent.end_with_parent)
        self.env = env

    def spawn(self, role: str, spec: dict[str, Any], logdir: Path) -> RoleProcess:
        argv = [sys.executable, "-m", "harness.agent"]
        return RoleProcess(role, argv, spec, logdir, env=self.env, cwd=str(ROOT))

    def describe(self) -> str:
        return "local"
