"""struct splice layouts (semantics 1.2), checked on any OS."""

from __future__ import annotations

import struct

import pytest

from harness.splice.api import SPLICE_LAYOUTS, pack_splice, split_idle, unpack_splice

pytestmark = pytest.mark.selftest

# ABI -> (size, offset of sp_max, offset of tv_sec, offset of tv_usec, tv_usec width)
LAYOUTS = {
    "lp64": (32, 8, 16, 24, 8),
    "openbsd-i386": (24, 4, 12, 20, 4),
    "openbsd-ilp32": (32, 8, 16, 24, 4),
    "freebsd-i386": (20, 4, 12, 16, 4),
}


@pytest.mark.parametrize("abi", sorted(LAYOUTS))
def test_layout(abi: str) -> None:
    size, off_max, off_sec, off_usec, usec_width = LAYOUTS[abi]
    raw = pack_splice(7, 0x0102030405060708, tv=(9, 11), abi=abi)
    assert len(raw) == size, f"{abi}: struct splice is {size} bytes, packed {len(raw)}"
    assert struct.unpack_from("=i", raw, 0)[0] == 7
    assert struct.unpack_from("=q", raw, off_max)[0] == 0x0102030405060708
    sec_fmt = "=i" if abi == "freebsd-i386" else "=q"
    assert struct.unpack_from(sec_fmt, raw, off_sec)[0] == 9
    assert struct.unpack_from("=q" if usec_width == 8 else "=i", raw, off_usec)[0] == 11
    assert unpack_splice(raw, abi) == (7, 0x0102030405060708, 9, 11)


def test_every_layout_is_tested() -> None:
    assert set(SPLICE_LAYOUTS) == set(LAYOUTS)


@pytest.mark.parametrize(("idle", "tv"), [(0.0, (0, 0)), (2.0, (2, 0)), (0.5, (0, 500000)), (1.25, (1, 250000))])
def test_idle_split(idle: float, tv: tuple[int, int]) -> None:
    assert split_idle(idle) == tv
