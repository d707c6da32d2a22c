"""A forked child sees its parent's splice (errata 7): the counter, the pending error, the state.

Each child is forked before the splice moves anything, so a child that read its own
copy of the engine would see the state of the fork, not the splice's.
"""

from __future__ import annotations

import errno
import json
import os
import socket
from collections.abc import Callable, Iterator

import pytest

from harness.splice.emulated import EmulatedSplicer

pytestmark = pytest.mark.selftest


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket, socket.socket, socket.socket]]:
    """c -> src (the source), drn (the drain) -> far, over TCP on loopback."""
    socks = []
    for _ in range(2):
        listener = socket.create_server(("127.0.0.1", 0))
        out = socket.create_connection(listener.getsockname())
        inn, _ = listener.accept()
        listener.close()
        socks += [out, inn]
    c, src, drn, far = socks
    yield c, src, drn, far
    for s in socks:
        s.close()


def in_child(ask: Callable[[], object]) -> tuple[Callable[[], object], int]:
    """Fork a child that waits for "go", then answers ask() on a pipe; returns (go-and-read, pid)."""
    go_r, go_w = os.pipe()
    ans_r, ans_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: nothing but the question and its answer
        try:
            os.read(go_r, 1)
            try:
                answer: object = ask()
            except OSError as e:
                answer = f"raised {errno.errorcode.get(e.errno or 0, e.errno)}"
            os.write(ans_w, json.dumps(answer).encode())
        finally:
            os._exit(0)
    os.close(go_r)
    os.close(ans_w)

    def go() -> object:
        os.write(go_w, b"g")
        os.close(go_w)
        with os.fdopen(ans_r, "rb") as f:
            data = f.read()
        os.waitpid(pid, 0)
        return json.loads(data)

    return go, pid


def test_child_reads_the_parents_counter_and_state(pair: tuple[socket.socket, ...]) -> None:
    c, src, drn, far = pair
    sp = EmulatedSplicer()
    sp.splice(src, drn)
    go, _ = in_child(lambda: [sp.length(src), sp.spliced(src)])
    c.sendall(b"hello")
    got = b""
    far.settimeout(10)
    while len(got) < 5:
        got += far.recv(5 - len(got))
    assert go() == [5, True], "a forked child must read the parent's splice: counter 5, still spliced"
    go, _ = in_child(lambda: [sp.length(src), sp.spliced(src)])
    sp.unsplice(src)
    assert go() == [5, False], "after the unsplice: the last splice's counter, and no splice"


def test_child_reads_and_clears_the_pending_error(pair: tuple[socket.socket, ...]) -> None:
    c, src, drn, _far = pair
    sp = EmulatedSplicer()
    sp.splice(src, drn, max=3)
    go, _ = in_child(lambda: sp.error(src))
    c.sendall(b"hello")
    ended = sp.wait_readable(src, 10)  # the splice ends at max: the source is readable again
    assert ended, "the splice did not end at max within 10 s"
    assert go() == errno.EFBIG, "the child must read the EFBIG the parent's splice left"
    assert sp.error(src) == 0, "reading SO_ERROR in the child clears it for every holder"
