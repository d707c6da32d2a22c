"""A forked child sees its parent's splice (errata 7): the counter, the pending error, the state.

Each child is forked before the splice moves anything, so a child that read its own
copy of the engine would see the state of the fork, not the splice's. Its reads and
poll on a spliced source wait for the parent's unsplice, as soreceive and soo_poll do.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import select
import signal
import socket
import struct
import termios
import time
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


class Child:
    """A forked child that waits for start(), then answers ask() on a pipe."""

    def __init__(self, ask: Callable[[], object]) -> None:
        go_r, self.go_w = os.pipe()
        self.ans_r, ans_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the child: nothing but the question and its answer
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

    def start(self) -> Child:
        os.write(self.go_w, b"g")
        os.close(self.go_w)
        return self

    def answered(self, within: float) -> bool:
        return bool(select.select([self.ans_r], [], [], within)[0])

    def answer(self, within: float = 10) -> object:
        """The child's answer; a child silent for `within` seconds is killed and the test fails."""
        if not self.answered(within):
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            os.close(self.ans_r)
            raise AssertionError(f"the forked child did not answer within {within} s (killed)")
        with os.fdopen(self.ans_r, "rb") as f:
            data = f.read()
        os.waitpid(self.pid, 0)
        return json.loads(data)

    def __call__(self) -> object:
        return self.start().answer()


def test_child_reads_the_parents_counter_and_state(pair: tuple[socket.socket, ...]) -> None:
    c, src, drn, far = pair
    sp = EmulatedSplicer()
    sp.splice(src, drn)
    go = Child(lambda: [sp.length(src), sp.spliced(src)])
    c.sendall(b"hello")
    got = b""
    far.settimeout(10)
    while len(got) < 5:
        got += far.recv(5 - len(got))
    assert go() == [5, True], "a forked child must read the parent's splice: counter 5, still spliced"
    go = Child(lambda: [sp.length(src), sp.spliced(src)])
    sp.unsplice(src)
    assert go() == [5, False], "after the unsplice: the last splice's counter, and no splice"


def test_child_reads_and_clears_the_pending_error(pair: tuple[socket.socket, ...]) -> None:
    c, src, drn, _far = pair
    sp = EmulatedSplicer()
    sp.splice(src, drn, max=3)
    go = Child(lambda: sp.error(src))
    c.sendall(b"hello")
    ended = sp.wait_readable(src, 10)  # the splice ends at max: the source is readable again
    assert ended, "the splice did not end at max within 10 s"
    assert go() == errno.EFBIG, "the child must read the EFBIG the parent's splice left"
    assert sp.error(src) == 0, "reading SO_ERROR in the child clears it for every holder"


def stalled(pair: tuple[socket.socket, ...], sp: EmulatedSplicer) -> None:
    """Splice src -> drn and fill everything behind far, so that data waits on the source."""
    c, src, drn, _far = pair
    sp.splice(src, drn)
    c.setblocking(False)
    chunk = b"x" * 65536
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            c.send(chunk)
        except BlockingIOError:
            if select.select([], [c], [], 0.2)[1]:
                continue  # the splice freed space: not stalled yet
            break
    assert sp.spliced(src) and fionread(src) > 0, "the source should hold data the full drain cannot take"


def fionread(s: socket.socket) -> int:
    return int(struct.unpack("i", fcntl.ioctl(s.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0])


def test_child_read_waits_for_the_parents_unsplice(pair: tuple[socket.socket, ...]) -> None:
    _c, src, _drn, _far = pair
    sp = EmulatedSplicer()
    stalled(pair, sp)
    child = Child(lambda: len(sp.recv(src, 5))).start()
    assert not child.answered(0.5), (
        "a forked child's read of a spliced source returned while the parent's splice lasts "
        "(errata 3, 7: soreceive sleeps until the unsplice)")
    sp.unsplice(src)
    assert child.answer() == 5, "after the unsplice the child reads the data the splice left on the source"


def test_child_poll_sees_the_parents_splice(pair: tuple[socket.socket, ...]) -> None:
    _c, src, _drn, _far = pair
    sp = EmulatedSplicer()
    stalled(pair, sp)
    assert Child(lambda: sp.wait_readable(src, 0.3))() is False, "a spliced source with data queued is not readable in a forked child (soo_poll)"
    child = Child(lambda: sp.wait_readable(src, None)).start()
    assert not child.answered(0.3), "a forked child's poll returned while the parent's splice lasts"
    sp.unsplice(src)
    assert child.answer() is True, "after the unsplice the source's data makes it readable in the child"
