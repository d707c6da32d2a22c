"""udp/: the upstream UDP cases as data (sosplice-cases 2.3). Ids are the upstream file names."""

from __future__ import annotations

from harness import digests as md5
from harness.cases import Case

UDP_CASES: list[Case] = [
    Case("default", "udp", len=251, lengths=(251,), md5=md5.STREAM_251),
]
