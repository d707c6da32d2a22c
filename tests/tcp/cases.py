"""tcp/: the upstream TCP cases as data (sosplice-cases 2.2). Ids are the upstream file names."""

from __future__ import annotations

from harness import digests as md5
from harness.cases import Case, Role

TCP_CASES: list[Case] = [
    Case("default", "tcp", len=251, md5=md5.STREAM_251),
    Case("long", "tcp", client=Role(len=2**17), len=2**17, md5=md5.STREAM_131072),
]
