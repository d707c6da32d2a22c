"""The data generator against the MD5 values recorded in the specification (sosplice-cases 1.7)."""

from __future__ import annotations

import hashlib

import pytest

from harness import digests
from harness.steps import datagram_payloads, stream_bytes

pytestmark = pytest.mark.selftest


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.mark.parametrize(("data", "digest"), [
    (stream_bytes(251), digests.STREAM_251),
    (stream_bytes(2**17), digests.STREAM_131072),
    (stream_bytes(2**17)[:32117], digests.STREAM_131072_FIRST_32117),
    (stream_bytes(251)[:113], digests.STREAM_251_FIRST_113),
    (stream_bytes(251)[:63], digests.STREAM_FIRST_63),
    (stream_bytes(0), digests.EMPTY),
    (stream_bytes(2**20), digests.STREAM_1048576),
    (stream_bytes(9216), digests.STREAM_9216),
    (stream_bytes(6), digests.STREAM_6),
    (stream_bytes(65507), digests.STREAM_65507),
    (stream_bytes(32749) + stream_bytes(65521) + stream_bytes(2039), digests.STREAMS_32749_65521_2039),
    (stream_bytes(251).replace(b"9", b""), digests.OOB_DROPPED_247),
    (stream_bytes(251)[:61], digests.OOB_AS_NORMAL_FIRST_61),
    (stream_bytes(251).replace(b"9", b"[9]"), digests.OOB_ALL_URGENT),
], ids=lambda v: v if isinstance(v, str) else f"{len(v)}B")
def test_stream_digest(data: bytes, digest: str) -> None:
    assert md5(data) == digest


@pytest.mark.parametrize(("lengths", "digest"), [
    ([1], digests.DGRAM_1),
    ([1, 2, 3], digests.DGRAM_1_2_3),
    ([1, 2], digests.DGRAM_1_2),
    ([5, 4, 3, 2, 1, 0], digests.DGRAM_5_4_3_2_1_0),
    ([251, 16384, 0, 1, 2, 3, 4, 5], digests.DGRAM_MULTI),
    ([0, 1, 2, 3, 4, 5], digests.DGRAM_0_TO_5),
    ([1, 3], digests.DGRAM_1_3),
    ([1, 10000, 2], digests.DGRAM_1_10000_2),
], ids=str)
def test_datagram_digest(lengths: list[int], digest: str) -> None:
    payloads = datagram_payloads(lengths)
    assert [len(p) for p in payloads] == lengths
    assert md5(b"".join(payloads)) == digest


def test_udp_write_digest() -> None:
    """udp/args-write: the relay's own "\\n", the client's 2,3,4, then the relay's 5."""
    data = datagram_payloads([1])[0] + b"".join(datagram_payloads([2, 3, 4])) + datagram_payloads([5])[0]
    assert md5(data) == digests.DGRAM_WRITE
