"""A network namespace with one broadcast-capable interface, for bcast.pl.

Linux loopback has no broadcast. The namespace gets a veth pair with a
documentation-range address (192.0.2.1/24, broadcast 192.0.2.255) and a default
route through it, so that the limited broadcast 255.255.255.255 is routable and
looped back to local sockets. The namespace has a unique name and is removed by
the fixture that created it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from harness.targets.base import RoleProcess
from harness.targets.local import ROOT, LocalTarget

ADDRESS = "192.0.2.1/24"
BROADCAST = "192.0.2.255"


class NetnsUnavailable(Exception):
    """Why no namespace could be made here."""


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise NetnsUnavailable(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")


class Netns:
    def __init__(self) -> None:
        if os.geteuid() != 0:
            raise NetnsUnavailable("creating a network namespace needs root")
        if shutil.which("ip") is None:
            raise NetnsUnavailable("the ip(8) command (iproute2) is not installed")
        self.name = f"sosplice-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        _ip("netns", "add", self.name)
        try:
            _ip("-n", self.name, "link", "set", "lo", "up")
            _ip("-n", self.name, "link", "add", "bc0", "type", "veth", "peer", "name", "bc1")
            _ip("-n", self.name, "addr", "add", ADDRESS, "broadcast", BROADCAST, "dev", "bc0")
            _ip("-n", self.name, "link", "set", "bc0", "up")
            _ip("-n", self.name, "link", "set", "bc1", "up")
            _ip("-n", self.name, "route", "add", "default", "dev", "bc0")
        except NetnsUnavailable:
            self.remove()
            raise

    def remove(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=30)


class NetnsTarget(LocalTarget):
    """Local agents, run inside the namespace."""

    def __init__(self, netns: Netns) -> None:
        super().__init__()
        self.netns = netns
        self.name = f"netns:{netns.name}"

    def spawn(self, role: str, spec: dict[str, Any], logdir: Path) -> RoleProcess:
        argv = ["ip", "netns", "exec", self.netns.name, sys.executable, "-m", "harness.agent"]
        return RoleProcess(role, argv, spec, logdir, env=self.env, cwd=str(ROOT))

    def describe(self) -> str:
        return self.name
