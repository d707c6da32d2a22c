"""Errata 9: the loop counter counts inspections of the head packet, not hops (engine selftest).

ph_loopcnt++ runs each time a pass looks at the head packet of the source. When
a slow drain lets a pass move only part of it, the rest is looked at again by
the next pass, one count higher: a looped packet meets ELOOP sooner behind a
slow drain than its hops alone would say. The emulation keeps hop counts per
range of data sent by its own splices (one range: one packet); these tests read
them through the engine, so they need the emulation (or a subclass of it).
"""

from __future__ import annotations

import socket
import time

import pytest

from harness.run import Settings
from harness.splice import load_splicer
from harness.splice.emulated import EmulatedSplicer, loop

pytestmark = pytest.mark.selftest


def test_partial_take_raises_the_rest_of_the_head() -> None:
    hops = loop.Hops()
    hops.ranges.extend([[1000, 5], [100, 9]])
    assert hops.take(300, datagram=False) == [(300, 5)]
    assert hops.first() == 6, "the rest of a partly moved head packet must count one inspection more"
    assert hops.take(800, datagram=False) == [(700, 6), (100, 9)]
    assert hops.first() == 0 and not hops.ranges


def test_whole_take_keeps_the_next_head() -> None:
    hops = loop.Hops()
    hops.ranges.extend([[100, 3], [100, 7]])
    assert hops.take(100, datagram=False) == [(100, 3)]
    assert hops.first() == 7, "a packet that was never looked at keeps the count it arrived with"


def _connected(lsock: socket.socket) -> tuple[socket.socket, socket.socket]:
    near = socket.create_connection(lsock.getsockname())
    far, _ = lsock.accept()
    return near, far


def test_slow_drain_raises_the_count_of_looped_data(settings: Settings) -> None:
    """client -> src1 => drn1 -> src2 => drn2 -> far: src2's data arrived over a splice
    (1 hop); a drain too small for it makes each pass move part of it."""
    splicer = load_splicer(settings.backend, settings.personality)
    if not isinstance(splicer, EmulatedSplicer):
        pytest.skip(f"an engine selftest: {settings.backend} has no emulation engine to look into")
    with socket.create_server(("127.0.0.1", 0)) as lsock:
        client, src1 = _connected(lsock)
        drn1, src2 = _connected(lsock)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        drn2, far = _connected(lsock)
    try:
        drn2.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        splicer.splice(src2, drn2)
        splicer.splice(src1, drn1)
        client.sendall(b"x" * 60000)
        key = loop.source_key(splicer.engine.links[splicer.engine.canon(src2.fileno())])
        deadline = time.monotonic() + 10
        seen = 0
        with splicer.engine.cond:  # released while waiting, so that the mover can pass
            while time.monotonic() < deadline:
                hops = splicer.engine.hops.get(key) if key else None
                seen = hops.first() if hops is not None else 0
                if seen >= 2:
                    break
                splicer.engine.cond.wait(0.05)
        assert seen >= 2, (f"after partial moves of data that arrived with 1 hop, the head counts {seen}; "
                           "errata 9: each pass that looks at it adds one")
    finally:
        for s in (src1, drn1, src2, drn2):
            splicer.close(s)
        for s in (client, far):
            s.close()
