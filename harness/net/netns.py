"""Network namespaces and veth links made per test, and the registry that removes them.

Every name carries this process's pid and a counter (`sosplice-<pid>-<n>-<role>`), so that
xdist workers and consecutive tests never collide, and so that a namespace left by a worker
that was killed can be recognised and removed by the next run (`sweep_stale`). Addresses
come from the documentation ranges only and exist only inside these namespaces.

Topology (one per test):

    relay namespace                         peer namespace
    +-----------------------+  client link  +-----------------------+
    | 198.51.100.1/24  rcN  |===============|  pcN  (198.51.100.2)  |
    | 203.0.113.1/24   rsN  |===============|  psN  (203.0.113.2)   |
    +-----------------------+  server link  +-----------------------+

With `fake_peer=True` the peer namespace has no address at all: its kernel drops every
frame the relay sends (no address of its own, forwarding off), so it never answers a
crafted handshake with RST, and a scapy peer plays 198.51.100.2 and 203.0.113.2 with raw
frames on pcN/psN. The relay namespace reaches the fake addresses through permanent
neighbour entries (nobody answers ARP for them).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import itertools
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..targets.base import RoleProcess

PREFIX = "sosplice-"
NAME_RE = re.compile(r"^sosplice-(\d+)-(\d+)-[a-z]+$")
CLONE_NEWNET = 0x40000000
IP_TIMEOUT = 15.0

CLIENT_NET = ("198.51.100.1", "198.51.100.2", 24)  # relay side, peer side, prefix
SERVER_NET = ("203.0.113.1", "203.0.113.2", 24)

_counter = itertools.count()
_lock = threading.Lock()
_created: dict[str, None] = {}  # namespaces of this process not yet deleted, in order

T = TypeVar("T")


class NetError(RuntimeError):
    """Setting up the namespaces failed (an `ip` command said why)."""


def ip(*args: str, ns: str | None = None) -> str:
    argv = ["ip", *(["-n", ns] if ns else []), *args]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=IP_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise NetError(f"{' '.join(argv)}: no answer within {IP_TIMEOUT:g} s") from None
    if done.returncode != 0:
        raise NetError(f"{' '.join(argv)}: {done.stderr.strip() or f'status {done.returncode}'}")
    return done.stdout


# ---- capability


_capability: list[str | None] = []


def missing_capability() -> str | None:
    """Why namespaces cannot be made here (None when they can). Probed once per process."""
    with _lock:
        if _capability:
            return _capability[0]
    reason: str | None = None
    if not sys.platform.startswith("linux"):
        reason = f"network namespaces need Linux, this is {sys.platform}"
    elif os.geteuid() != 0:
        reason = "network namespaces and raw sockets need root"
    elif shutil.which("ip") is None:
        reason = "iproute2 (`ip`) is not installed"
    else:
        try:
            import scapy  # noqa: F401
        except ImportError:
            reason = "scapy is not installed"
    if reason is None:
        name = new_name("probe")
        try:
            add_namespace(name)
        except NetError as e:
            reason = f"cannot create a network namespace: {e}"
        finally:
            delete_namespace(name)
    with _lock:
        _capability[:] = [reason]
    return reason


# ---- names and the registry


def new_name(role: str) -> str:
    return f"{PREFIX}{os.getpid()}-{next(_counter)}-{role}"


def add_namespace(name: str) -> None:
    with _lock:
        _created[name] = None
    ip("netns", "add", name)


def keep(name: str) -> None:
    """The namespace outlives this process (a CI sshd): no cleanup at exit; its owner deletes it."""
    with _lock:
        _created.pop(name, None)


def delete_namespace(name: str) -> None:
    """Remove a namespace of ours: first the processes we left in it (by pid), then the name."""
    for pid in namespace_pids(name):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, 9)
    with contextlib.suppress(NetError):
        ip("netns", "del", name)
    with _lock:
        _created.pop(name, None)


def namespace_pids(name: str) -> list[int]:
    try:
        out = ip("netns", "pids", name)
    except NetError:
        return []
    return [int(p) for p in out.split() if p.isdigit() and int(p) != os.getpid()]


def listed() -> list[str]:
    try:
        out = ip("netns", "list")
    except (NetError, FileNotFoundError):
        return []
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def ours_alive() -> list[str]:
    """Namespaces this process made that still exist (must be none between tests)."""
    mine = f"{PREFIX}{os.getpid()}-"
    return [n for n in listed() if n.startswith(mine)]


def cleanup_all() -> None:
    with _lock:
        names = list(_created)
    for name in reversed(names):
        delete_namespace(name)


def sweep_stale() -> list[str]:
    """Delete namespaces that a dead process of this suite left behind (killed worker)."""
    removed = []
    for name in listed():
        m = NAME_RE.match(name)
        if not m:
            continue
        pid = int(m.group(1))
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
            continue  # its owner still runs (another worker): not ours to touch
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        delete_namespace(name)
        removed.append(name)
    return removed


atexit.register(cleanup_all)


# ---- running code inside a namespace


_libc = ctypes.CDLL(None, use_errno=True)


def enter(name: str) -> None:
    """Move the calling thread (only it) into namespace `name`."""
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"setns {name}: {os.strerror(code)}")
    finally:
        os.close(fd)


def call_in(name: str, fn: Callable[[], T]) -> T:
    """Run `fn` on a fresh thread inside namespace `name`; sockets it opens stay there.

    Threads that `fn` starts inherit the namespace, so a sniffer started here sniffs there.
    """
    box: dict[str, Any] = {}

    def body() -> None:
        try:
            enter(name)
            box["value"] = fn()
        except BaseException as e:
            box["error"] = e

    th = threading.Thread(target=body, name=f"netns-{name}", daemon=True)
    th.start()
    th.join(IP_TIMEOUT)
    if th.is_alive():
        raise NetError(f"work inside namespace {name} did not finish within {IP_TIMEOUT:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def sysctl(ns: str, key: str, value: str) -> None:
    path = "/proc/sys/" + key.replace(".", "/")

    def write() -> None:
        with open(path, "w") as f:
            f.write(value)

    call_in(ns, write)


# ---- the topology


@dataclass(frozen=True)
class Link:
    """One veth pair between the relay namespace and the peer namespace."""

    name: str  # "client" or "server"
    relay_if: str
    peer_if: str
    relay_addr: str
    peer_addr: str
    prefix: int
    relay_mac: str
    peer_mac: str


class Topology:
    """Two namespaces and two links, removed again by close() (also at exit, and on error)."""

    def __init__(self, fake_peer: bool) -> None:
        self.fake_peer = fake_peer
        self.relay_ns = new_name("relay")
        self.peer_ns = new_name("peer")
        self.procs: list[RoleProcess] = []
        tag = f"{os.getpid()}x{next(_counter)}"  # <= 7 + 1 + a few digits: names stay <= 15
        self.links: dict[str, Link] = {}
        for i, (which, (raddr, paddr, prefix)) in enumerate(
                (("client", CLIENT_NET), ("server", SERVER_NET))):
            letter = which[0]
            self.links[which] = Link(
                name=which, relay_if=f"r{letter}{tag}"[:15], peer_if=f"p{letter}{tag}"[:15],
                relay_addr=raddr, peer_addr=paddr, prefix=prefix,
                relay_mac=f"02:53:50:00:0{i}:01", peer_mac=f"02:53:50:00:0{i}:02")
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    @property
    def client(self) -> Link:
        return self.links["client"]

    @property
    def server(self) -> Link:
        return self.links["server"]

    def _build(self) -> None:
        for ns in (self.relay_ns, self.peer_ns):
            add_namespace(ns)
            # no IPv6 autoconfiguration chatter on the links; no forwarding in the peer
            sysctl(ns, "net.ipv6.conf.default.disable_ipv6", "1")
            sysctl(ns, "net.ipv6.conf.all.disable_ipv6", "1")
            ip("link", "set", "lo", "up", ns=ns)
        for link in self.links.values():
            ip("link", "add", link.relay_if, "address", link.relay_mac, "netns", self.relay_ns,
               "type", "veth", "peer", "name", link.peer_if, "address", link.peer_mac,
               "netns", self.peer_ns)
            ip("addr", "add", f"{link.relay_addr}/{link.prefix}", "dev", link.relay_if,
               ns=self.relay_ns)
            if not self.fake_peer:
                ip("addr", "add", f"{link.peer_addr}/{link.prefix}", "dev", link.peer_if,
                   ns=self.peer_ns)
                ip("neigh", "replace", link.relay_addr, "lladdr", link.relay_mac, "dev",
                   link.peer_if, "nud", "permanent", ns=self.peer_ns)
            ip("link", "set", link.relay_if, "up", ns=self.relay_ns)
            ip("link", "set", link.peer_if, "up", ns=self.peer_ns)
            ip("neigh", "replace", link.peer_addr, "lladdr", link.peer_mac, "dev",
               link.relay_if, "nud", "permanent", ns=self.relay_ns)

    def spawn(self, ns: str, role: str, spec: dict[str, Any], logdir: Path) -> RoleProcess:
        """An agent role (`python -m harness.agent`) inside one of the namespaces."""
        from ..targets.local import LocalTarget

        env = LocalTarget().env
        argv = ["ip", "netns", "exec", ns, sys.executable, "-m", "harness.agent"]
        proc = RoleProcess(role, argv, spec, logdir, env=env, cwd=str(Path(__file__).parents[2]))
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(Exception):
                proc.kill()
        for ns in (self.peer_ns, self.relay_ns):
            delete_namespace(ns)

    def __enter__(self) -> Topology:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["NetError", "Topology", "call_in", "cleanup_all", "enter", "missing_capability",
           "ours_alive", "sweep_stale"]
