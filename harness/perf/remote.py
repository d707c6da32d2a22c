"""The relay of a measurement on an ssh target (`python -m harness.perf --target ssh://...`).

As upstream's REMOTE_SSH mode of perf/: the relay runs on the remote host with
its own splicer (native on OpenBSD/FreeBSD, the emulation elsewhere), client and
server stay here. The relay is the agent, uploaded as for the test cases, with
the spec `{"role": "perf-relay", ...}` on stdin; it listens on the remote
address and forwards to the sink on the local address, and reports its own CPU
time, since the local process is only its ssh.
"""

from __future__ import annotations

import json
import shlex

from ..targets.base import InfrastructureError
from ..targets.ssh import CONNECT_TIMEOUT, Remote, SshHost, parse_target
from .procs import PerfError, Proc


class PerfTarget:
    """One remote host for the relays of a measurement: probed, agent uploaded, cleaned up."""

    def __init__(self, url: str, options: list[str], local_addr: str, remote_addr: str,
                 connect_timeout: float = CONNECT_TIMEOUT) -> None:
        try:
            urls = parse_target(url)
        except ValueError as e:
            raise PerfError(str(e).replace("--splice-target", "--target")) from None
        if not urls or len(urls) != 1:
            raise PerfError(f"--target takes one ssh://[user@]host[:port], not {url!r}")
        self.local_addr = local_addr
        self.remote_addr = remote_addr
        self.host = SshHost(urls[0], options, connect_timeout)
        try:
            self.remote: Remote = self.host.open()
        except InfrastructureError as e:
            self.host.close()
            raise PerfError(str(e)) from None

    def describe(self) -> str:
        return self.remote.describe()

    def relay(self, mode: str, proto: str, port: int, sockbuf: int) -> Proc:
        """The relay there, forwarding to this machine's sink on `port`."""
        spec = {"role": "perf-relay", "backend": self.remote.backend,
                "personality": self.remote.personality, "mode": mode, "proto": proto,
                "host": self.local_addr, "port": port, "sockbuf": sockbuf, "bind": self.remote_addr}
        try:
            self.host.conn.require()
        except InfrastructureError as e:
            raise PerfError(str(e)) from None
        argv = self.host.conn.argv(f"/bin/sh {shlex.quote(self.remote.directory + '/role.sh')}")
        return Proc(argv, f"{mode} relay on {self.host.conn.url}", stdin=(json.dumps(spec) + "\n").encode())

    def close(self) -> str:
        """End what is left of the relays there, remove the agent's directory, end the master."""
        return self.host.close()
