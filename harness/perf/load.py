"""Load generator processes: a sink that counts, a source that blasts for a while.

    python -m harness.perf.load sink tcp|udp [BIND]
    python -m harness.perf.load source tcp|udp HOST PORT SECONDS [DATAGRAM_SIZE]

Each prints JSON lines: {"event": "listening", "port"} (sink), then
{"event": "done", "bytes", "datagrams", "seconds"}. Big buffers and
recv_into keep Python out of the way of the kernel.
"""

from __future__ import annotations

import json
import os
import select
import socket
import sys
import time

from harness import leash

BUF = 1 << 20
UDP_IDLE = 0.5


def emit(**fields: object) -> None:
    os.write(1, (json.dumps(fields) + "\n").encode())


def sink(proto: str, bind: str = "127.0.0.1") -> None:
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    if proto == "tcp":
        lsock = socket.create_server((bind, 0), family=family)
        emit(event="listening", port=lsock.getsockname()[1])
        conn, _ = lsock.accept()
        buf = bytearray(BUF)
        view = memoryview(buf)
        total = 0
        first = 0.0
        while True:
            n = conn.recv_into(view)
            if not n:
                break
            if not total:
                first = time.monotonic()
            total += n
        emit(event="done", bytes=total, datagrams=0, seconds=time.monotonic() - first if total else 0.0)
        return
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((bind, 0))
    emit(event="listening", port=s.getsockname()[1])
    buf = bytearray(1 << 16)
    total = count = 0
    first = last = 0.0
    select.select([s], [], [])
    while select.select([s], [], [], UDP_IDLE)[0]:
        n = s.recv_into(buf)
        last = time.monotonic()
        if not count:
            first = last
        total += n
        count += 1
    emit(event="done", bytes=total, datagrams=count, seconds=last - first)


def source(proto: str, host: str, port: int, seconds: float, size: int) -> None:
    if proto == "tcp":
        s = socket.create_connection((host, port))
        data = memoryview(b"x" * BUF)
        total = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            s.sendall(data)
            total += BUF
        s.shutdown(socket.SHUT_WR)
        s.recv(1)  # wait for the far end to close
        emit(event="done", bytes=total, datagrams=0, seconds=seconds)
        return
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((host, port))
    payload = b"x" * size
    total = count = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for _ in range(64):
            try:
                s.send(payload)
            except (BlockingIOError, ConnectionRefusedError, OSError):
                continue
            total += size
            count += 1
    emit(event="done", bytes=total, datagrams=count, seconds=seconds)


def main(argv: list[str]) -> int:
    leash.end_with_parent()
    if len(argv) >= 2 and argv[0] == "sink":
        sink(argv[1], argv[2] if len(argv) > 2 else "127.0.0.1")
        return 0
    if len(argv) >= 5 and argv[0] == "source":
        size = int(argv[5]) if len(argv) > 5 else 1472
        source(argv[1], argv[2], int(argv[3]), float(argv[4]), size)
        return 0
    print("usage: python -m harness.perf.load sink tcp|udp [BIND] | source tcp|udp HOST PORT SECONDS [SIZE]",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
