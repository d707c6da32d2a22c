"""harness/agent: what a role's listening socket is, before any case uses it."""

from __future__ import annotations

import socket

import pytest

from harness.agent import Role
from harness.splice.emulated import EmulatedSplicer


@pytest.mark.parametrize(("protocol", "reuse"), [("tcp", True), ("udp", False)])
def test_udp_listener_does_not_share_its_port(protocol: str, reuse: bool, capfd: pytest.CaptureFixture[str]) -> None:
    """SO_REUSEADDR only for TCP: on Linux two UDP sockets with it may get the same port from a
    bind to port 0, and the later one takes the earlier one's datagrams (a case's server would
    receive another case's traffic)."""
    role = Role({"role": "server", "protocol": protocol, "opts": {}}, EmulatedSplicer())
    s = role.listen()
    try:
        assert bool(s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)) == reuse
    finally:
        s.close()
    assert "listening" in capfd.readouterr().out
