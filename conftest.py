"""pytest glue: the splice options, fixtures, parametrization and the end-of-run checks."""

from __future__ import annotations

import os
import re
import shutil
import socket
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.run import DEFAULT_TIME_SCALE, Settings
from harness.splice import BackendError, check_backend_class
from harness.splice.api import PERSONALITIES
from harness.targets import base as targets_base
from harness.targets.base import Target

pytest_plugins = [
    "harness.sweep",  # the run's mark; leftovers of earlier runs that died are ended at the start
    "harness.targets.plugin",  # --splice-target, the ssh options, the target fixture
    "harness.endsignals",  # SIGTERM and SIGHUP end a run as Ctrl-C does
    "harness.results",  # the results table at the end, --splice-report FILE as JSON
]

MODES = ("copy", "splice")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sosplice", "socket splicing regression")
    group.addoption("--splice-backend", default=os.environ.get("SPLICE_BACKEND", "emulated"),
                    help="emulated (default), native, or module:Class of your own splicer")
    group.addoption("--splice-personality", default=os.environ.get("SPLICE_PERSONALITY", "openbsd"),
                    help="semantics the emulation plays and the expectations use: openbsd (default), freebsd")
    group.addoption("--splice-modes", default="copy,splice",
                    help="relay modes to run, comma separated (default copy,splice)")
    group.addoption("--splice-time-scale", type=float,
                    default=float(os.environ.get("SPLICE_TIME_SCALE", DEFAULT_TIME_SCALE)),
                    help=f"factor for every scenario duration (default {DEFAULT_TIME_SCALE}; 1 = upstream timings)")


def pytest_configure(config: pytest.Config) -> None:
    backend = config.getoption("--splice-backend")
    personality = config.getoption("--splice-personality")
    modes = [m.strip() for m in config.getoption("--splice-modes").split(",") if m.strip()]
    scale = config.getoption("--splice-time-scale")
    try:
        check_backend_class(backend)
    except BackendError as e:
        raise pytest.UsageError(str(e)) from None
    if personality not in PERSONALITIES:
        raise pytest.UsageError(
            f"unknown splice personality {personality!r}; valid: {', '.join(sorted(PERSONALITIES))}")
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise pytest.UsageError(f"--splice-modes: {','.join(bad) or '(none)'} not valid; valid: copy, splice")
    if scale <= 0:
        raise pytest.UsageError(f"--splice-time-scale must be positive, not {scale}")
    if backend == "native":
        from harness.splice.native import BackendUnavailable, probe

        try:
            probe()
        except BackendUnavailable as e:
            raise pytest.UsageError(str(e)) from None
    config.stash[SETTINGS] = Settings(backend=backend, personality=personality, scale=scale)
    config.stash[MODES_KEY] = tuple(modes)


SETTINGS = pytest.StashKey[Settings]()
MODES_KEY = pytest.StashKey[tuple[str, ...]]()
REPORT = pytest.StashKey[dict[str, pytest.TestReport]]()


def pytest_report_header(config: pytest.Config) -> str:
    s = config.stash[SETTINGS]
    modes: tuple[str, ...] = config.stash[MODES_KEY]
    return (f"splice: backend={s.backend} personality={s.personality} "
            f"modes={','.join(modes)} time-scale={s.scale:g}")


MUTATION_CHECK = "tests/selftest/test_mutation.py"


def mutation_check_wanted(config: pytest.Config) -> bool:
    """The mutation check runs when named (`pytest tests/selftest/test_mutation.py`, `tox -e mutation`)
    or with SPLICE_MUTATION=1; a plain `pytest` tests the splicer, not the suite's power to catch one."""
    return os.environ.get("SPLICE_MUTATION", "") not in ("", "0") or any(
        "test_mutation" in str(arg) for arg in config.args)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if mutation_check_wanted(config):
        return
    dropped = [item for item in items if item.nodeid.startswith(MUTATION_CHECK)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if not item.nodeid.startswith(MUTATION_CHECK)]
        config.stash[MUTATION_LEFT_OUT] = len(dropped)


MUTATION_LEFT_OUT = pytest.StashKey[int]()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "mode" in metafunc.fixturenames:
        modes: tuple[str, ...] = metafunc.config.stash[MODES_KEY]
        metafunc.parametrize("mode", list(modes))


@pytest.fixture(scope="session")
def settings(request: pytest.FixtureRequest, target: Target) -> Settings:
    # a remote target decides the personality (and the relay's backend) itself
    from harness.targets.plugin import settings_for

    return settings_for(request.config.stash[SETTINGS], target)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    rep = yield
    item.stash.setdefault(REPORT, {})[rep.when] = rep
    return rep


@pytest.fixture
def logdir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The test's work directory: role logs stay on failure (path reported), go on success."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)[-120:]
    path = tmp_path_factory.mktemp(name, numbered=True)
    yield path
    reports = request.node.stash.get(REPORT, {})
    failed = any(r.failed for r in reports.values())
    if failed:
        request.node.add_report_section("teardown", "logs", f"role logs kept in {path}")
    else:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def no_leftover_processes() -> Iterator[None]:
    """Every process group a test started is gone when the test ends, whatever happened."""
    before = set(targets_base.STARTED)
    yield
    mine = {pgid: what for pgid, what in targets_base.STARTED.items() if pgid not in before}
    alive = targets_base.groups_still_alive(mine)
    if alive:
        targets_base.end_groups(mine)
        pytest.fail("processes outlived the test:\n  " + "\n  ".join(alive), pytrace=False)


def require_all() -> bool:
    """SPLICE_REQUIRE_ALL=1 (CI): a skip for a missing capability is a failure."""
    return os.environ.get("SPLICE_REQUIRE_ALL", "") not in ("", "0")


def uses_inet6(case: Any) -> bool:
    """A case with an IPv6 listener or connector (`listendomain`/`connectdomain` inet6)."""
    return "inet6" in {getattr(role, attr, None) for role in (case.client, case.relay, case.server)
                       for attr in ("listendomain", "connectdomain")}


def skip_without_ipv6(case: Any, target: Target) -> None:
    """An IPv6 case needs ::1 here and, with a remote that is not on loopback, an IPv6 pair
    (--splice-local-addr6/--splice-remote-addr6): else skip with the reason (under
    SPLICE_REQUIRE_ALL=1, fail)."""
    if not uses_inet6(case):
        return
    why = None
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError as e:
        why = f"this host has no IPv6 loopback (::1): {e}"
    if why is None and getattr(target, "name", "") == "ssh" and not getattr(target, "remote_addr6", "::1"):
        why = ("no IPv6 path to the remote: the ssh connection is IPv4 and the remote is not on loopback; "
               "give --splice-local-addr6 and --splice-remote-addr6")
    if why:
        if require_all():
            pytest.fail(f"SPLICE_REQUIRE_ALL=1: {why}", pytrace=False)
        pytest.skip(why)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """No role process may outlive its test."""
    alive = targets_base.groups_still_alive(dict(targets_base.STARTED))
    if alive:
        session.config.stash.setdefault(LEFTOVERS, []).extend(alive)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


LEFTOVERS = pytest.StashKey[list[str]]()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    leftovers = terminalreporter.config.stash.get(LEFTOVERS, [])
    if leftovers:
        terminalreporter.section("processes left behind", red=True)
        for line in leftovers:
            terminalreporter.write_line(line)
    mutation_summary(terminalreporter)
    left_out = terminalreporter.config.stash.get(MUTATION_LEFT_OUT, 0)
    if left_out:
        terminalreporter.write_line(f"mutation check: not in this run ({left_out} wrong splicers); "
                                    f"run it with `tox -e mutation` or `pytest {MUTATION_CHECK}`")


def mutation_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line for the mutation check: how many wrong splicers ran and which escaped."""
    caught: list[str] = []
    escaped: list[str] = []
    for outcome, bucket in (("passed", caught), ("failed", escaped)):
        for report in terminalreporter.stats.get(outcome, []):
            nodeid = getattr(report, "nodeid", "")
            if getattr(report, "when", "") == "call" and "test_mutant_is_caught[" in nodeid:
                bucket.append(nodeid.rsplit("[", 1)[1].rstrip("]"))
    if caught or escaped:
        line = f"mutation check: {len(caught) + len(escaped)} wrong splicers run, {len(caught)} caught"
        if escaped:
            line += f", {len(escaped)} not caught: {', '.join(sorted(escaped))}"
        terminalreporter.write_line(line, red=bool(escaped), green=not escaped)
