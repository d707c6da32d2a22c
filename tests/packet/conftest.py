"""Fixtures of the packet-level cases: capability check, namespaces, the wire, the scene.

Every namespace is made by the test that uses it and removed in its teardown (and by the
registry at exit); a namespace that a killed worker left is swept at the next session.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness.run import Settings
from harness.targets.base import Target

if TYPE_CHECKING:
    from harness.net.netns import Topology
    from harness.net.wire import Wire


def _require_all() -> bool:
    return os.environ.get("SPLICE_REQUIRE_ALL", "") not in ("", "0")


@pytest.fixture(scope="session")
def netns_capable() -> Iterator[None]:
    """Skip (or, under SPLICE_REQUIRE_ALL=1, fail) when namespaces cannot be made here."""
    from harness.net import netns

    reason = netns.missing_capability()
    if reason:
        if _require_all():
            pytest.fail(f"SPLICE_REQUIRE_ALL=1 and the packet cases cannot run: {reason}")
        pytest.skip(reason)
    netns.sweep_stale()
    yield
    netns.cleanup_all()


@pytest.fixture
def local_only(target: Target, settings: Settings) -> Settings:
    if target.name != "local":
        pytest.skip(f"packet cases run the relay in a local namespace, not on {target.describe()}")
    return settings


def _topology(fake: bool) -> Iterator[Topology]:
    from harness.net import netns

    topo = netns.Topology(fake_peer=fake)
    try:
        yield topo
    finally:
        topo.close()
    left = [n for n in netns.ours_alive() if n in (topo.relay_ns, topo.peer_ns)]
    assert not left, f"namespaces survived their test: {left}"


@pytest.fixture
def fake_topo(netns_capable: None) -> Iterator[Topology]:
    """Relay namespace + a peer namespace without addresses (scapy plays both ends)."""
    yield from _topology(fake=True)


@pytest.fixture
def real_topo(netns_capable: None) -> Iterator[Topology]:
    """Relay namespace + a peer namespace where real client and server roles run."""
    yield from _topology(fake=False)


def _wire(topo: Topology, logdir: Path, request: pytest.FixtureRequest) -> Iterator[Wire]:
    from harness.net.wire import Wire

    wire = Wire(topo)
    try:
        yield wire
    finally:
        wire.close()
        saved = wire.save(logdir)
        if saved:
            request.node.add_report_section(
                "teardown", "capture", "pcap: " + ", ".join(str(p) for p in saved))


@pytest.fixture
def fake_wire(fake_topo: Topology, logdir: Path, request: pytest.FixtureRequest) -> Iterator[Wire]:
    yield from _wire(fake_topo, logdir, request)


@pytest.fixture
def real_wire(real_topo: Topology, logdir: Path, request: pytest.FixtureRequest) -> Iterator[Wire]:
    yield from _wire(real_topo, logdir, request)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """No namespace of this process may outlive the session (`ip netns list` stays clean)."""
    import sys

    if os.environ.get("PYTEST_XDIST_WORKER") is None and os.geteuid() == 0:
        # the controller (or a plain run): remove what a worker that died left behind
        from harness.net import netns as registry

        swept = registry.sweep_stale()
        if swept:
            session.config.stash.setdefault(NETNS_SWEPT, []).extend(swept)
    netns = sys.modules.get("harness.net.netns")
    if netns is None:
        return
    left = netns.ours_alive()
    if left:
        netns.cleanup_all()
        for name in left:
            netns.delete_namespace(name)
        if exitstatus != pytest.ExitCode.INTERRUPTED:
            # a leak of a finished test; an interrupted one never reached its teardown
            session.config.stash.setdefault(NETNS_LEFT, []).extend(left)
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


NETNS_LEFT = pytest.StashKey[list[str]]()
NETNS_SWEPT = pytest.StashKey[list[str]]()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    left = terminalreporter.config.stash.get(NETNS_LEFT, [])
    if left:
        terminalreporter.section("network namespaces left behind", red=True)
        for name in left:
            terminalreporter.write_line(f"{name} (removed now)")
    swept = terminalreporter.config.stash.get(NETNS_SWEPT, [])
    if swept:
        terminalreporter.section("network namespaces of dead workers, removed", yellow=True)
        for name in swept:
            terminalreporter.write_line(name)


URGENT_AS_DATA = "FreeBSD forwards an inline urgent byte as plain data (semantics errata 11), not with URG"


@pytest.fixture
def urgent_forwarded(request: pytest.FixtureRequest) -> None:
    """The oobinline wire checks need the urgent mark forwarded (OpenBSD); copy mode keeps it anywhere."""

    settings: Settings = request.getfixturevalue("settings")
    if settings.personality == "freebsd" and "[copy]" not in request.node.nodeid:
        pytest.skip(f"freebsd: {URGENT_AS_DATA}")
