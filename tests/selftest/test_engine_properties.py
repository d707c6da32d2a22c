"""Property tests of the emulated engine: random writes, schedules, max values and buffers.

Whatever the schedule, the drain's peer gets exactly the expected prefix, the
counter equals the bytes moved, nothing is duplicated, reordered or lost, and
what was not moved stays readable on the source. These run in this process,
directly on the engine (not through the agents).
"""

from __future__ import annotations

import contextlib
import errno
import select
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.splice.api import errno_name
from harness.splice.emulated import EmulatedSplicer
from harness.steps import datagram_payloads, stream_bytes

pytestmark = pytest.mark.selftest
DEADLINE = 10.0
PROPERTY = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def read_exactly(sock: socket.socket, size: int, what: str) -> bytes:
    data = b""
    deadline = time.monotonic() + DEADLINE
    while len(data) < size:
        left = deadline - time.monotonic()
        assert left > 0 and select.select([sock], [], [], left)[0], (
            f"{what}: got {len(data)} of {size} bytes within {DEADLINE} s")
        chunk = sock.recv(size - len(data))
        assert chunk, f"{what}: EOF after {len(data)} of {size} bytes"
        data += chunk
    return data


def nothing_more(sock: socket.socket, within: float = 0.05) -> bool:
    return not select.select([sock], [], [], within)[0]


@dataclass
class TcpPath:
    """client -> src (spliced) -> drn -> far, all on loopback."""

    client: socket.socket
    src: socket.socket
    drn: socket.socket
    far: socket.socket

    def close(self, sp: EmulatedSplicer) -> None:
        for s in (self.src, self.drn):
            sp.close(s)
        for s in (self.client, self.far):
            s.close()


def tcp_path(bufsize: int | None) -> TcpPath:
    with socket.create_server(("127.0.0.1", 0)) as lsock:
        if bufsize:
            lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, bufsize)
            lsock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, bufsize)
        client = socket.create_connection(lsock.getsockname())
        src, _ = lsock.accept()
        drn = socket.create_connection(lsock.getsockname())
        far, _ = lsock.accept()
    if bufsize:
        drn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, bufsize)
    return TcpPath(client, src, drn, far)


@contextlib.contextmanager
def tcp_path_of(splicer: EmulatedSplicer, bufsize: int | None) -> Iterator[TcpPath]:
    path = tcp_path(bufsize)
    try:
        yield path
    finally:
        path.close(splicer)


def writer(sock: socket.socket, chunks: list[bytes], pauses: list[float], eof: bool) -> threading.Thread:
    def run() -> None:
        for chunk, pause in zip(chunks, pauses, strict=True):
            sock.sendall(chunk)
            if pause:
                time.sleep(pause)  # part of the generated schedule, not synchronisation
        if eof:
            sock.shutdown(socket.SHUT_WR)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@PROPERTY
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=40000), min_size=1, max_size=8),
    pauses=st.lists(st.sampled_from([0.0, 0.0, 0.001, 0.01]), min_size=8, max_size=8),
    max_choice=st.one_of(st.just(0), st.integers(min_value=1, max_value=200000)),
    bufsize=st.sampled_from([None, 4096, 16384]),
    prequeue=st.booleans(),
)
def test_tcp_moves_exact_prefix(sizes: list[int], pauses: list[float], max_choice: int,
                                bufsize: int | None, prequeue: bool) -> None:
    splicer = EmulatedSplicer()
    with tcp_path_of(splicer, bufsize) as path:
        check_tcp(splicer, path, sizes, pauses, max_choice, prequeue)


def check_tcp(splicer: EmulatedSplicer, path: TcpPath, sizes: list[int], pauses: list[float],
              max_choice: int, prequeue: bool) -> None:
    data = stream_bytes(sum(sizes))
    chunks, offset = [], 0
    for n in sizes:
        chunks.append(data[offset : offset + n])
        offset += n
    total = len(data)
    expected = min(total, max_choice) if max_choice else total
    if prequeue:
        path.client.sendall(chunks[0][:100])
        chunks[0] = chunks[0][100:]
        read_exactly_queued(path.src, min(100, sizes[0]))
    splicer.splice(path.src, path.drn, max=max_choice)
    thread = writer(path.client, chunks, pauses[: len(chunks)], eof=True)

    moved = read_exactly(path.far, expected, "drain's peer")
    assert moved == data[:expected], "the drain's peer got other bytes than the source's prefix"
    assert splicer.wait_readable(path.src, DEADLINE), "the splice did not end after EOF or max"
    thread.join(DEADLINE)
    assert splicer.length(path.src) == expected, "the counter differs from the bytes moved"
    err = errno_name(splicer.error(path.src))
    if max_choice and total >= max_choice:
        assert err == "EFBIG", f"max {max_choice} reached: SO_ERROR {err}, expected EFBIG"
    else:
        assert err == "0", f"ended by EOF: SO_ERROR {err}, expected 0"
    rest = b""
    while True:
        chunk = splicer.recv(path.src, 1 << 16)
        if not chunk:
            break
        rest += chunk
    assert rest == data[expected:], "what was not moved is not what stayed on the source"
    assert nothing_more(path.far), "the drain's peer got more than the expected prefix"


def read_exactly_queued(sock: socket.socket, size: int) -> None:
    """Wait until the kernel has queued `size` bytes on the socket (semantics 6.3 item 7)."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if len(sock.recv(1 << 16, socket.MSG_PEEK | socket.MSG_DONTWAIT)) >= size:
            return
        select.select([sock], [], [], 0.01)
    raise AssertionError(f"{size} bytes not queued within {DEADLINE} s")


@dataclass
class UdpPath:
    client: socket.socket
    src: socket.socket
    drn: socket.socket
    far: socket.socket


@contextlib.contextmanager
def udp_path_of(splicer: EmulatedSplicer) -> Iterator[UdpPath]:
    path = udp_path()
    try:
        yield path
    finally:
        for s in (path.src, path.drn):
            splicer.close(s)
        path.client.close()
        path.far.close()


def udp_path() -> UdpPath:
    src = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    src.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    src.bind(("127.0.0.1", 0))
    far = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    far.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    far.bind(("127.0.0.1", 0))
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.connect(src.getsockname())
    drn = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    drn.connect(far.getsockname())
    return UdpPath(client, src, drn, far)


def recv_datagram(sock: socket.socket, what: str) -> bytes:
    assert select.select([sock], [], [], DEADLINE)[0], f"{what}: no datagram within {DEADLINE} s"
    return sock.recv(1 << 16)


@PROPERTY
@given(
    # more datagrams than one batch of the pass peeks (mmsg.BATCH), zero-length ones among them
    # runs of one size among them: the pass sends those as one UDP GSO send (mmsg.py)
    sizes=st.lists(st.one_of(st.integers(min_value=0, max_value=3000), st.sampled_from([1472, 1472, 700])),
                   min_size=1, max_size=80),
    max_choice=st.one_of(st.just(0), st.integers(min_value=1, max_value=60000)),
    prequeue=st.booleans(),
)
def test_udp_never_splits(sizes: list[int], max_choice: int, prequeue: bool) -> None:
    splicer = EmulatedSplicer()
    with udp_path_of(splicer) as path:
        check_udp(splicer, path, sizes, max_choice, prequeue)


def check_udp(splicer: EmulatedSplicer, path: UdpPath, sizes: list[int], max_choice: int,
              prequeue: bool) -> None:
    payloads = datagram_payloads(sizes)
    moved_count, total = 0, 0
    for p in payloads:
        if max_choice and total + len(p) > max_choice:
            break
        total += len(p)
        moved_count += 1
    exact_hit = bool(max_choice) and total == max_choice
    ends = bool(max_choice) and (exact_hit or moved_count < len(payloads))
    if prequeue:
        for p in payloads:
            path.client.send(p)
        read_exactly_queued_udp(path.src)
        splicer.splice(path.src, path.drn, max=max_choice)
    else:
        splicer.splice(path.src, path.drn, max=max_choice)
        for p in payloads:
            path.client.send(p)
    got = [recv_datagram(path.far, f"datagram {i} at the drain's peer") for i in range(moved_count)]
    assert got == payloads[:moved_count], "datagrams were split, merged, reordered or changed"
    if ends:
        assert splicer.wait_readable(path.src, DEADLINE), "the splice did not end at max"
    else:
        splicer.unsplice(path.src)
    assert splicer.length(path.src) == total, "the counter differs from the payload bytes moved"
    err = errno_name(splicer.error(path.src))
    assert err == ("EFBIG" if exact_hit else "0"), f"SO_ERROR {err} (exact hit of max: {exact_hit})"
    for i, p in enumerate(payloads[moved_count:], start=moved_count):
        assert recv_datagram(path.src, f"datagram {i} left on the source") == p
    assert nothing_more(path.far), "the drain's peer got more datagrams than fit"


@PROPERTY
@given(
    sizes=st.lists(st.sampled_from([0, 0, 1, 7, 100, 1400]), min_size=2, max_size=40),
    max_choice=st.integers(min_value=1, max_value=20000),
)
def test_udp_resplice_after_max_moves_the_rest_in_order(sizes: list[int], max_choice: int) -> None:
    """What a splice ended at max left queued, zero-length datagrams too, a new splice moves in order.

    The pass peeks past the head (SO_PEEK_OFF); Linux skips a zero-length datagram
    that was peeked once, so one left queued must not be lost to the next splice.
    """
    splicer = EmulatedSplicer()
    with udp_path_of(splicer) as path:
        payloads = datagram_payloads(sizes)
        for p in payloads:
            path.client.send(p)
        read_exactly_queued_udp(path.src)
        splicer.splice(path.src, path.drn, max=max_choice)
        moved, total = 0, 0
        while moved < len(payloads) and total + len(payloads[moved]) <= max_choice:
            total += len(payloads[moved])
            moved += 1
        if moved == len(payloads) and total < max_choice:
            splicer.unsplice(path.src)  # all fit and max was not reached: still spliced
        else:
            assert splicer.wait_readable(path.src, DEADLINE), "the splice did not end at max"
        err = errno_name(splicer.error(path.src))  # read, as it must be: a pending error ends the next splice
        assert err == ("EFBIG" if total == max_choice else "0"), f"SO_ERROR {err} after the first splice"
        splicer.splice(path.src, path.drn)
        got = [recv_datagram(path.far, f"datagram {i} at the drain's peer") for i in range(len(payloads))]
        assert got == payloads, (f"after a re-splice the drain's peer got {[len(g) for g in got]}, "
                                 f"sent {[len(p) for p in payloads]}")
        splicer.unsplice(path.src)
        assert nothing_more(path.far), "a datagram arrived twice"


def read_exactly_queued_udp(sock: socket.socket) -> None:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        try:
            sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            return
        except BlockingIOError:
            select.select([sock], [], [], 0.01)
    raise AssertionError("no datagram queued")


def test_error_is_get_and_clear() -> None:
    splicer = EmulatedSplicer()
    with tcp_path_of(splicer, None) as path:
        check_error_clears(splicer, path)


def check_error_clears(splicer: EmulatedSplicer, path: TcpPath) -> None:
    splicer.splice(path.src, path.drn, max=3)
    path.client.sendall(b"abcdef")
    assert read_exactly(path.far, 3, "drain's peer") == b"abc"
    assert splicer.wait_readable(path.src, DEADLINE)
    assert splicer.error(path.src) == errno.EFBIG
    assert splicer.error(path.src) == 0, "SO_ERROR must clear when read"
