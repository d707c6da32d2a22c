"""The MD5 values of upstream's streams and datagram sets (sosplice-cases 1.7), by meaning.

They are copied from the specification, not computed, so that the generator in
harness.steps is checked against an independent record (tests/selftest).
"""

from __future__ import annotations

STREAM_251 = "bc3a3f39af35fe5b1687903da2b00c7f"
STREAM_131072 = "31e5ad3d0d2aeb1ad8aaa847dfa665c2"
STREAM_131072_FIRST_32117 = "ee338e9693fb2a2ec101bb28935ed123"
STREAM_251_FIRST_113 = "dc099ef642faa02bce71298f11e7d44d"
STREAM_FIRST_63 = "4a3c3783fc56943715c53e435973b2ee"
EMPTY = "d41d8cd98f00b204e9800998ecf8427e"
STREAM_1048576 = "6649bbec13f3d7efaedf01c0cfa54f88"
STREAM_9216 = "6d263239be35ccf30cb04c5f58a35dbe"
STREAM_6 = "857f2261690a2305dba03062e778a73b"
STREAM_65507 = "20f83f523b6b48b11d9f8a15e507e16a"
STREAMS_32749_65521_2039 = "0efc7833e5c0652823ca63eaccb9918f"
OOB_DROPPED_247 = "f76df02a35322058b8c29002aaea944f"
OOB_DROPPED_FIRST_61 = "e4282daf8d2ca21cc8b70b1314713314"
OOB_AS_NORMAL_FIRST_61 = "4b5efc5f86fa5fc873c82103ceece85d"
OOB_URGENT_FIRST_61 = "c9f459db9b4f369980c79bff17e1c2a0"
OOB_ALL_URGENT = "24b69642243fee9834bceee5b47078ae"
OOB_VARIANTS = (
    OOB_ALL_URGENT,
    "8d509bd55cfabd400403d857386b4956",  # only the 4th mark seen as urgent
    "5cf8c3fd08f541ae07361a11f17213fe",  # 3rd and 4th
    "5aa8135a1340e173a7d7a5fa048a999e",  # 2nd, 3rd and 4th
    "e5be513d9d2b877b6841bbb4790c67dc",  # 1st, 3rd and 4th
)
DGRAM_1 = "68b329da9893e34099c7d8ad5cb9c940"
DGRAM_1_2_3 = "868972544a6c4312aa52568c8dfa2366"
DGRAM_1_2 = "52f58714e430f1fc84346961c240054b"
DGRAM_1_3 = "5df2ad5a8fa778004d06dc070811754c"
DGRAM_5_4_3_2_1_0 = "464ddb107046ee0a42f43b202e826b8f"
DGRAM_MULTI = "544464f20384567028998e1a1a4c5b1e"  # 251,16384,0,1,2,3,4,5
DGRAM_1_10000_2 = "2ec9a4b45a449095245177d2cf51dd24"
DGRAM_0_TO_5 = "553af7b8fc0e205ead2562ab61a2ad13"
DGRAM_WRITE = "1830da3b4358ccedeb49877c2cff8c86"  # relay "\n", client 0\n 12\n 345\n, relay 0123\n
