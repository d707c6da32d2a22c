"""Wrong splicers that lose bytes where upstream checks nothing (issue 13 kind 2).

Each is caught by the conservation check (harness.conservation) of a nocheck
TCP case: the bytes the server got, plus what the relay read or found left on
its source, no longer add up to the client's stream in order.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from pathlib import Path
from typing import Any

from harness.splice.emulated import Engine, Link, somove, sounsplice

from .mutants import Mutant, around


def _discard(sock: socket.socket, limit: int) -> None:
    """Read and drop up to `limit` queued bytes, as a kernel freeing mbufs it should keep."""
    with contextlib.suppress(OSError):
        sock.recv(limit, socket.MSG_DONTWAIT)


class MaxTailDropped(Mutant):
    """The pass that reaches max frees the rest of the mbuf it split (up to 64 bytes past max)."""

    def mutate(self) -> None:
        def finish(original: Any, eng: Engine, link: Link, err: int, max_reached: bool, eof: bool) -> None:
            if max_reached:
                _discard(link.source, 64)
            original(eng, link, err, max_reached, eof)
        around(somove, "finish", finish)


class UnspliceFlushes(Mutant):
    """sounsplice() flushes the source's receive buffer, as if it called sorflush()."""

    def mutate(self) -> None:
        def unsplice(original: Any, eng: Engine, link: Link, *args: Any) -> None:
            if eng.live(link):  # before the engine lets go of its socket objects
                _discard(link.source, 1 << 20)
            original(eng, link, *args)
        around(sounsplice, "sounsplice", unsplice)


class ErrorDissolveFlushes(Mutant):
    """A splice that ends with an error (not EFBIG or ETIMEDOUT) drops what is queued on the source."""

    def mutate(self) -> None:
        def finish(original: Any, eng: Engine, link: Link, err: int, max_reached: bool, eof: bool) -> None:
            if err and err not in (errno.EFBIG, errno.ETIMEDOUT):
                _discard(link.source, 1 << 20)
            original(eng, link, err, max_reached, eof)
        around(somove, "finish", finish)


HERE = Path(__file__).stem
TCP = "tests/tcp/test_tcp.py::test_tcp"
CATCHERS: dict[str, list[str]] = {
    f"tests.selftest.{HERE}:MaxTailDropped": [f"{TCP}[splice-max-sleep-client-short-relay]",
                                              f"{TCP}[splice-max-sleep-relay-short-relay]"],
    f"tests.selftest.{HERE}:UnspliceFlushes": [f"{TCP}[splice-max-sleep-client-short-relay]",
                                               f"{TCP}[splice-unsplice-forked-relay]"],
    f"tests.selftest.{HERE}:ErrorDissolveFlushes": [f"{TCP}[splice-reset-relay]", f"{TCP}[splice-server-abort-relay]",
                                                    f"{TCP}[splice-server-exit-relay]"],
}
