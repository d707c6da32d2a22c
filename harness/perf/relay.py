"""The relay under measurement, after upstream's perf/relay.c: accept, connect, then copy or splice.

    python -m harness.perf.relay copy|splice tcp|udp HOST PORT [BACKEND] [PERSONALITY] [SOCKBUF] [BIND]

Listens on BIND (default 127.0.0.1) port 0 and reports the port; relays one
connection (TCP) or one stream of datagrams (UDP, ended by 1 s of idleness) to
HOST PORT, then reports the bytes it moved and its own CPU seconds (so that a
relay on a remote host is accounted for there, not by its ssh).

On an ssh target the agent runs it (spec `{"role": "perf-relay", ...}`): stdlib only.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from typing import Any

from harness import leash, ports
from harness.splice import load_splicer
from harness.splice.api import Splicer

SOCKBUF = 100000  # relay.c's SO_RCVBUF (listening side) and SO_SNDBUF (outbound); 0: the kernel's
UDP_IDLE = 1.0
USAGE = ("usage: python -m harness.perf.relay copy|splice tcp|udp HOST PORT [BACKEND] [PERSONALITY] "
         "[SOCKBUF] [BIND]")


def emit(**fields: object) -> None:
    os.write(1, (json.dumps(fields) + "\n").encode())


def relay(splicer: Splicer, mode: str, proto: str, host: str, port: int, sockbuf: int = SOCKBUF,
          bind: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    def make() -> socket.socket:
        s = socket.socket(family, kind)
        if sockbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, sockbuf)
        return s

    lsock = ports.bind_reachable(make, bind)
    if proto == "tcp":
        lsock.listen(5)
    emit(event="listening", port=lsock.getsockname()[1])
    out = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, kind)
    if sockbuf:
        out.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sockbuf)
    if proto == "tcp":
        src, _ = lsock.accept()
        out.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    else:
        src = lsock
    out.connect((host, port))
    moved = 0
    if mode == "splice":
        splicer.splice(src, out, 0, UDP_IDLE if proto == "udp" else 0.0)
        splicer.wait_readable(src, None)
        moved = splicer.length(src)
    elif proto == "tcp":
        buf = bytearray(1 << 16)
        view = memoryview(buf)
        while True:
            n = src.recv_into(view)
            if not n:
                break
            out.sendall(view[:n])
            moved += n
    else:
        buf = bytearray(1 << 16)
        src.settimeout(UDP_IDLE)
        while True:
            try:
                n = src.recv_into(buf)
            except TimeoutError:
                break
            try:
                out.send(memoryview(buf)[:n])
                moved += n
            except OSError:
                pass
    if proto == "tcp":
        out.shutdown(socket.SHUT_WR)
        out.recv(1)
    times = os.times()
    emit(event="done", bytes=moved, cpu=times.user + times.system)
    return 0


def run_spec(spec: dict[str, Any], splicer: Splicer) -> int:
    """The agent's entry: the same relay, its arguments from a JSON spec."""
    return relay(splicer, str(spec["mode"]), str(spec["proto"]), str(spec["host"]), int(spec["port"]),
                 int(spec.get("sockbuf", SOCKBUF)), str(spec.get("bind", "127.0.0.1")))


def main(argv: list[str]) -> int:
    leash.end_with_parent()
    if len(argv) < 4 or argv[0] not in ("copy", "splice") or argv[1] not in ("tcp", "udp"):
        print(USAGE, file=sys.stderr)
        return 2
    mode, proto, host, port = argv[0], argv[1], argv[2], int(argv[3])
    backend = argv[4] if len(argv) > 4 else "emulated"
    personality = argv[5] if len(argv) > 5 else "openbsd"
    sockbuf = int(argv[6]) if len(argv) > 6 else SOCKBUF
    bind = argv[7] if len(argv) > 7 else "127.0.0.1"
    return relay(load_splicer(backend, personality), mode, proto, host, port, sockbuf, bind)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
