"""pytest glue for where roles run: `--splice-target` and the ssh options, the `target` fixture.

The controller (the xdist controller, or the only process without xdist)
connects to every ssh target before any test, detects its OS, uploads the
agent once, and removes everything at the end, Ctrl-C included. Each xdist
worker keeps to one host (gw0 -> first, gw1 -> second, ...) over its own
master connection. A failure of the target itself is one line, and the run
stops instead of failing every case.

`--splice-relayd-command` and the `relayd_remote` fixture: with an ssh target the
relayd cases run that command there (harness/relayd/remote.py), probed once per
session; when it cannot start, they skip with the reason.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from .. import sweep
from ..relayd.remote import DEFAULT_COMMAND, RemoteRelayd, parse_command
from ..run import Settings
from .base import InfrastructureError, Target
from .local import LocalTarget
from .ssh import (
    CONNECT_TIMEOUT,
    Remote,
    SshHost,
    SshTarget,
    SshUrl,
    end_masters,
    parse_target,
    pick,
    remotes_from_json,
    remotes_to_json,
)

URLS = pytest.StashKey[list[SshUrl] | None]()
HOSTS = pytest.StashKey[list[SshHost]]()
RUNDIR = pytest.StashKey[str]()
WORKER_INPUT = "splice_remotes"
WORKER_RUNDIR = "splice_ssh_rundir"
INFRA_EXIT = pytest.ExitCode.INTERRUPTED


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sosplice")
    group.addoption("--splice-target", default=os.environ.get("SPLICE_TARGET", "local"),
                    help="where the relay runs: local (default), or ssh://[user@]host[:port], "
                         "several comma separated to spread over xdist workers")
    group.addoption("--splice-ssh-option", action="append", default=[], metavar="ARG",
                    help="one argument passed to ssh (repeat: --splice-ssh-option=-i "
                         "--splice-ssh-option=KEY, --splice-ssh-option=-oX=Y, -F config)")
    group.addoption("--splice-local-addr", default=os.environ.get("SPLICE_LOCAL_ADDR"),
                    help="address of this machine as the remote reaches it; the local server "
                         "listens there (default: the client address of the ssh connection)")
    group.addoption("--splice-remote-addr", default=os.environ.get("SPLICE_REMOTE_ADDR"),
                    help="address of the remote as this machine reaches it; the remote relay "
                         "listens there (default: the address the ssh connection reached)")
    group.addoption("--splice-local-addr6", default=os.environ.get("SPLICE_LOCAL_ADDR6"),
                    help="this machine's IPv6 address as the remote reaches it, for the inet6 cases "
                         "(default: ::1 with a loopback remote, the ssh connection's when it is IPv6)")
    group.addoption("--splice-remote-addr6", default=os.environ.get("SPLICE_REMOTE_ADDR6"),
                    help="the remote's IPv6 address as this machine reaches it, for the inet6 cases")
    group.addoption("--splice-ssh-timeout", type=float, default=CONNECT_TIMEOUT,
                    help=f"ssh ConnectTimeout in seconds (default {CONNECT_TIMEOUT:g})")
    group.addoption("--splice-relayd-command",
                    default=os.environ.get("SPLICE_RELAYD_COMMAND", DEFAULT_COMMAND),
                    help=f"with an ssh target, the relayd cases' daemon there, run as COMMAND -dvv "
                         f"-f FILE (default '{DEFAULT_COMMAND}', plain relayd for root; our own "
                         f"daemon: 'python3 -m harness.relayd')")


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    try:
        urls = parse_target(config.getoption("--splice-target"))
    except ValueError as e:
        raise pytest.UsageError(str(e)) from None
    config.stash[URLS] = urls
    if urls and config.getoption("--splice-backend") != "emulated":
        raise pytest.UsageError(
            "--splice-backend applies to local runs; with an ssh target the remote's OS decides "
            "(native on OpenBSD/FreeBSD, the emulation elsewhere)")
    if config.getoption("--splice-ssh-timeout") <= 0:
        raise pytest.UsageError("--splice-ssh-timeout must be positive")
    try:
        parse_command(config.getoption("--splice-relayd-command"))
    except ValueError as e:
        raise pytest.UsageError(str(e)) from None


def pytest_sessionstart(session: pytest.Session) -> None:
    """The controller connects to every remote and uploads the agent, before any worker starts."""
    config = session.config
    urls = config.stash.get(URLS, None)
    if not urls or is_worker(config):
        return
    hosts = config.stash[HOSTS] = []
    # every master of this run (the controller's and each worker's) has its control socket here
    rundir = config.stash[RUNDIR] = tempfile.mkdtemp(prefix=sweep.RUNDIR_PREFIX)
    (Path(rundir) / "owner").write_text(sweep.owner() + "\n")  # the next run removes it if we die
    for url in urls:
        host = SshHost(url, config.getoption("--splice-ssh-option"),
                       config.getoption("--splice-ssh-timeout"),
                       personality=config.getoption("--splice-personality"), rundir=rundir)
        hosts.append(host)
        try:
            host.open()
        except InfrastructureError as e:
            close_hosts(config)
            pytest.exit(f"splice target: {e}", returncode=INFRA_EXIT)
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if host.swept and reporter is not None:
            reporter.write_line(f"sweep: {host.swept}")
        try:
            host.check_reach(*addresses(config, host.remote))
            pair6 = addresses6(config, host.remote)
            if all(pair6) and pair6 != ("::1", "::1"):
                host.check_reach(*pair6)
        except InfrastructureError as e:
            close_hosts(config)
            pytest.exit(f"splice target: {e}", returncode=INFRA_EXIT)


def addresses(config: pytest.Config, remote: Remote) -> tuple[str, str]:
    """(this machine as the remote reaches it, the remote as this machine reaches it): the
    options when given, else the two ends of the ssh connection (SSH_CONNECTION there)."""
    local = config.getoption("--splice-local-addr") or remote.client_addr or "127.0.0.1"
    there = config.getoption("--splice-remote-addr") or remote.server_addr or "127.0.0.1"
    return local, there


def is_loopback(addr: str) -> bool:
    return addr.startswith("127.") or addr == "::1"


def addresses6(config: pytest.Config, remote: Remote) -> tuple[str, str]:
    """The IPv6 pair for the inet6 cases: the options, else ::1 for a loopback remote, else
    the ssh connection's ends when it runs over IPv6; ("", "") when no IPv6 path is known."""
    local6, there6 = config.getoption("--splice-local-addr6"), config.getoption("--splice-remote-addr6")
    if local6 or there6:
        if not (local6 and there6):
            raise pytest.UsageError("--splice-local-addr6 and --splice-remote-addr6 go together")
        return local6, there6
    local, there = addresses(config, remote)
    if is_loopback(local) and is_loopback(there):
        return "::1", "::1"
    if ":" in local and ":" in there:
        return local, there
    return "", ""


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: every worker learns the remotes (OS, backend, agent directory) from the controller."""
    hosts = node.config.stash.get(HOSTS, [])
    if hosts:
        node.workerinput[WORKER_INPUT] = remotes_to_json([h.remote for h in hosts])
        node.workerinput[WORKER_RUNDIR] = node.config.stash[RUNDIR]


def close_hosts(config: pytest.Config) -> list[str]:
    notes = []
    for host in config.stash.get(HOSTS, []):
        note = host.close()
        if note:
            notes.append(note)
    config.stash[HOSTS] = []
    rundir = config.stash.get(RUNDIR, None)
    if rundir:
        end_masters(rundir)  # the masters of workers killed before their own teardown
        del config.stash[RUNDIR]
    return notes


def pytest_unconfigure(config: pytest.Config) -> None:
    """Controller: end the remote agents, remove the remote directories, end the masters."""
    for note in close_hosts(config):
        print(f"splice target cleanup: {note}")


def pytest_report_header(config: pytest.Config) -> list[str]:
    hosts = config.stash.get(HOSTS, [])
    if not hosts:
        return []
    return [f"splice target {h.remote.describe()}" for h in hosts]


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """Where the relay (and API) role runs: local, or this worker's ssh host."""
    config = request.config
    if not config.stash.get(URLS, None):
        yield LocalTarget()
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    options = config.getoption("--splice-ssh-option")
    timeout = config.getoption("--splice-ssh-timeout")
    if is_worker(config):
        workerinput: dict[str, Any] = config.workerinput  # type: ignore[attr-defined]
        remotes: list[Remote] = remotes_from_json(workerinput[WORKER_INPUT])
        remote = pick(remotes, worker)
        target = SshTarget(remote, options, *addresses(config, remote), timeout,
                           rundir=workerinput.get(WORKER_RUNDIR), addr6=addresses6(config, remote))
    else:
        host: SshHost = pick(config.stash[HOSTS], worker)
        target = SshTarget(host.remote, options, *addresses(config, host.remote), timeout, host=host,
                           addr6=addresses6(config, host.remote))
    try:
        yield target
    finally:
        target.close()


@pytest.fixture(scope="session")
def relayd_remote(request: pytest.FixtureRequest, target: Target) -> RemoteRelayd | None:
    """With an ssh target, how the relayd cases start their daemon there; locally None.

    Probed once per session (per xdist worker): a daemon that cannot start skips
    every relayd case with the reason (SPLICE_REQUIRE_ALL=1: fails them).
    """
    if not isinstance(target, SshTarget):
        return None
    remote = RemoteRelayd(target, request.config.getoption("--splice-relayd-command"))
    why = remote.probe()
    if why:
        if os.environ.get("SPLICE_REQUIRE_ALL", "") not in ("", "0"):
            pytest.fail(f"SPLICE_REQUIRE_ALL=1: {why}", pytrace=False)
        pytest.skip(why)
    return remote


def settings_for(base: Settings, target: Target) -> Settings:
    """The settings the controller expects with: a remote decides the personality and backend.

    Local roles (client, server) never splice; they get the emulation with the remote's
    personality, and the remote relay gets the backend its OS has (SshTarget.spawn).
    """
    if isinstance(target, SshTarget):
        return Settings(backend="emulated", personality=target.personality, scale=base.scale)
    return base


def _stop(item: pytest.Item, e: InfrastructureError) -> None:
    message = f"splice target: {e}"
    item.session.shouldstop = message
    pytest.fail(message, pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    try:
        return (yield)
    except InfrastructureError as e:
        _stop(item, e)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    try:
        return (yield)
    except InfrastructureError as e:
        _stop(item, e)
