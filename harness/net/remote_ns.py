"""A remote host played by a network namespace: one veth link to this machine, an sshd inside.

    this machine (its own namespace)          the remote's namespace
    vh<pid>x<n>  192.0.2.(8k+1)/29  =======  vr<pid>x<n>  192.0.2.(8k+2)/29
                 2001:db8:0:k::1/64                       2001:db8:0:k::2/64

The addresses come from the documentation ranges and exist only on these two ends,
so what crosses the link stays on this machine. Block k is one that no interface of
this machine uses yet: two of these at once (xdist workers) never share a subnet.
The namespace is named and registered as every other (harness/net/netns.py), so it
is deleted with its link at the end, and swept after a run that was killed.
"""

from __future__ import annotations

import itertools
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..targets import sshd as sshd_mod
from . import netns

BLOCKS = 32  # /29 blocks of 192.0.2.0/24
_tags = itertools.count()


def _used_blocks() -> set[int]:
    out = netns.ip("-o", "-4", "addr", "show")
    used = set()
    for line in out.splitlines():
        for word in line.split():
            if word.startswith("192.0.2."):
                used.add(int(word.split("/")[0].rsplit(".", 1)[1]) // 8)
    return used


@dataclass
class RemoteNamespace:
    """The namespace, its link and (once started) its sshd; close() removes all of it."""

    name: str = ""
    block: int = -1
    here_if: str = ""
    there_if: str = ""
    sshd: sshd_mod.LoopbackSshd | None = None
    _made: list[str] = field(default_factory=list)

    @property
    def here4(self) -> str:
        return f"192.0.2.{8 * self.block + 1}"

    @property
    def there4(self) -> str:
        return f"192.0.2.{8 * self.block + 2}"

    @property
    def here6(self) -> str:
        return f"2001:db8:0:{self.block:x}::1"

    @property
    def there6(self) -> str:
        return f"2001:db8:0:{self.block:x}::2"

    def open(self, name: str | None = None) -> RemoteNamespace:
        """Make it; `name` for one that outlives this process (CI: not of the form the sweep
        removes, see `detach`)."""
        why = netns.missing_capability()
        if why:
            raise netns.NetError(why)
        free = sorted(set(range(BLOCKS)) - _used_blocks())
        if not free:
            raise netns.NetError("no free /29 block of 192.0.2.0/24 for a remote namespace")
        self.block = free[(os.getpid() + next(_tags)) % len(free)]
        tag = f"{os.getpid()}x{next(_tags)}"
        self.here_if, self.there_if = f"vh{tag}"[:15], f"vr{tag}"[:15]
        self.name = name or netns.new_name("sshd")
        try:
            netns.add_namespace(self.name)
            netns.ip("link", "set", "lo", "up", ns=self.name)
            netns.ip("link", "add", self.here_if, "type", "veth", "peer", "name", self.there_if,
                     "netns", self.name)
            self._made.append(self.here_if)
            netns.ip("addr", "add", f"{self.here4}/29", "dev", self.here_if)
            netns.ip("addr", "add", f"{self.here6}/64", "dev", self.here_if, "nodad")
            netns.ip("link", "set", self.here_if, "up")
            netns.ip("addr", "add", f"{self.there4}/29", "dev", self.there_if, ns=self.name)
            netns.ip("addr", "add", f"{self.there6}/64", "dev", self.there_if, "nodad", ns=self.name)
            netns.ip("link", "set", self.there_if, "up", ns=self.name)
        except BaseException:
            self.close()
            raise
        return self

    def start_sshd(self, workdir: Path, detach: bool = False,
                   login_shell: str | None = None) -> sshd_mod.LoopbackSshd:
        """sshd inside; with `login_shell`, the user's shell as sshd sees it in the namespace
        (`ip netns exec` puts /etc/netns/NAME/passwd over /etc/passwd there), so that every
        remote command runs under that shell, the rest of the machine untouched."""
        if login_shell:
            self.etc().mkdir(parents=True, exist_ok=True)
            user = os.getuid()
            lines = []
            for line in Path("/etc/passwd").read_text().splitlines():
                fields = line.split(":")
                if len(fields) == 7 and fields[2] == str(user):
                    fields[6] = login_shell
                lines.append(":".join(fields))
            (self.etc() / "passwd").write_text("\n".join(lines) + "\n")
        self.sshd = sshd_mod.start(workdir, detach=detach, netns=self.name, address=self.there4)
        return self.sshd

    def etc(self) -> Path:
        return Path("/etc/netns") / self.name

    def close(self) -> None:
        if self.sshd is not None:
            self.sshd.stop()
            self.sshd = None
        if self.name:
            netns.delete_namespace(self.name)  # its end of the link goes with it, and so ours
            shutil.rmtree(self.etc(), ignore_errors=True)
            self.name = ""

    def __enter__(self) -> RemoteNamespace:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


def detached(name: str, workdir: Path, login_shell: str | None) -> RemoteNamespace:
    """A remote namespace with its sshd that outlives this process (`python -m
    harness.targets.sshd start DIR --netns`); `stop_detached` removes it by the name."""
    remote = RemoteNamespace().open(name)
    netns.keep(remote.name)
    try:
        remote.start_sshd(workdir, detach=True, login_shell=login_shell)
    except BaseException:
        remote.close()
        raise
    return remote


def stop_detached(name: str) -> None:
    netns.delete_namespace(name)  # its sshd is in it: ended by pid first
    shutil.rmtree(Path("/etc/netns") / name, ignore_errors=True)
