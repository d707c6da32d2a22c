"""One bounded run of one path: bytes through, seconds, CPU seconds of every process involved."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .. import leash
from .procs import PerfError, Proc, listening_port
from .relay import SOCKBUF
from .remote import PerfTarget

OURS = ("direct", "copy", "splice")
PEERS = ("socat", "haproxy")  # relays measured beside ours when installed
PEERS_OF = {"tcp": ("socat", "haproxy"), "udp": ("socat",)}  # haproxy relays TCP only
START = 10.0  # seconds a process may take to come up
REMOTE_START = 30.0  # a relay on an ssh target: ssh through the master, the agent's start


@dataclass(frozen=True)
class Sample:
    gbps: float
    dgrams_per_s: float
    cpu_s_per_gb: float


def available_peers(proto: str = "tcp") -> list[str]:
    return [p for p in PEERS_OF.get(proto, ()) if shutil.which(p)]


def _haproxy(listener: socket.socket, port: int, workdir: Path, sockbuf: int) -> Proc:
    """haproxy with option splice-auto, on a listening socket we bound (it refuses port 0).

    With relay.c's buffers: SO_RCVBUF on the client side, SO_SNDBUF on the server side.
    """
    cfg = workdir / "haproxy.cfg"
    tune = f"  tune.rcvbuf.client {sockbuf}\n  tune.sndbuf.server {sockbuf}\n" if sockbuf else ""
    cfg.write_text(
        f"global\n  maxconn 64\n{tune}"
        "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n"
        f"listen relay\n  bind fd@{listener.fileno()}\n  option splice-auto\n"
        f"  server sink 127.0.0.1:{port}\n"
    )
    proc = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], pass_fds=[listener.fileno()],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=leash.die_with_starter)
    wrapped = Proc.__new__(Proc)
    wrapped.what, wrapped.proc, wrapped.cpu, wrapped._buf = "haproxy", proc, 0.0, b""
    return wrapped


def _socat(proto: str, port: int, sockbuf: int) -> tuple[Proc, int]:
    """socat as a copy relay set up as relay.c (64 KiB copies, its buffers, TCP_NODELAY out).

    For UDP, one direction, one datagram per read and write, as our copy relay.
    It binds port 0 itself and the kernel tells us which port it got.
    """
    listen = f",rcvbuf={sockbuf}" if sockbuf else ""
    out = f",sndbuf={sockbuf}" if sockbuf else ""
    if proto == "udp":
        argv = ["socat", "-u", "-b", "65536", f"UDP4-RECV:0,bind=127.0.0.1{listen}",
                f"UDP4-SENDTO:127.0.0.1:{port}{out}"]
    else:
        argv = ["socat", "-b", "65536", f"TCP4-LISTEN:0,bind=127.0.0.1,reuseaddr{listen}",
                f"TCP4:127.0.0.1:{port},nodelay{out}"]
    proc = Proc(argv, "socat")
    return proc, listening_port(proc.proc.pid, START, proto)


def run_path(proto: str, path: str, seconds: float, backend: str = "emulated",
             personality: str = "openbsd", size: int = 1472, sockbuf: int = SOCKBUF,
             target: PerfTarget | None = None) -> Sample:
    """Sink, then the relay of `path` (none for direct), then the source for `seconds`.

    Every relay, ours and the peers, gets the same socket buffers (`sockbuf`,
    relay.c's 100000 by default; 0 leaves the kernel's autotuning). With a
    target, our relays run there and report their own CPU time.
    """
    procs: list[Proc] = []
    remote_relay: Proc | None = None
    local_addr = target.local_addr if target is not None else "127.0.0.1"
    relay_addr = "127.0.0.1"
    with tempfile.TemporaryDirectory(prefix="sosplice-perf-") as tmp:
        listener: socket.socket | None = None
        try:
            sink = Proc.python("harness.perf.load", "sink", proto, local_addr, what="sink")
            procs.append(sink)
            port = int(sink.event("listening", START)["port"])
            if path in ("copy", "splice") and target is not None:
                remote_relay = target.relay(path, proto, port, sockbuf)
                procs.append(remote_relay)
                port = int(remote_relay.event("listening", REMOTE_START)["port"])
                relay_addr = target.remote_addr
            elif path in ("copy", "splice"):
                relay = Proc.python("harness.perf.relay", path, proto, "127.0.0.1", str(port), backend,
                                    personality, str(sockbuf), what=f"{path} relay")
                procs.append(relay)
                port = int(relay.event("listening", START)["port"])
            elif path in PEERS:
                if target is not None:
                    raise PerfError(f"{path} runs here, not on the target: not measured with --target")
                if path not in PEERS_OF.get(proto, ()):
                    raise PerfError(f"{path} is not measured for {proto.upper()}")
                if path == "haproxy":
                    listener = socket.create_server(("127.0.0.1", 0), backlog=5)
                    procs.append(_haproxy(listener, port, Path(tmp), sockbuf))
                    port = listener.getsockname()[1]
                else:
                    peer, port = _socat(proto, port, sockbuf)
                    procs.append(peer)
            elif path != "direct":
                raise PerfError(f"unknown path {path!r}")
            source = Proc.python("harness.perf.load", "source", proto, relay_addr, str(port), str(seconds),
                                 str(size), what="source")
            procs.append(source)
            done = sink.event("done", seconds + 30)
            source.event("done", 30)
            remote_cpu = float(remote_relay.event("done", 30)["cpu"]) if remote_relay else 0.0
            for proc in procs:
                if proc.what in PEERS:
                    proc.kill()
                else:
                    proc.reap(30)
        finally:
            for proc in procs:
                proc.kill()
            if listener is not None:
                listener.close()
    # the remote relay's own account, not its local ssh's
    cpu = sum(p.cpu for p in procs if p is not remote_relay) + (remote_cpu if remote_relay else 0.0)
    moved = int(done["bytes"])
    elapsed = float(done["seconds"]) or seconds
    if not moved:
        raise PerfError(f"{proto} {path}: nothing arrived at the sink")
    return Sample(gbps=moved * 8 / elapsed / 1e9, dgrams_per_s=int(done["datagrams"]) / elapsed,
                  cpu_s_per_gb=cpu / (moved / 1e9))


def iperf3(seconds: float) -> Sample | None:
    """iperf3's own TCP number on loopback, in a private namespace (it will not bind port 0)."""
    if not shutil.which("iperf3") or not shutil.which("ip") or os.geteuid() != 0:
        return None
    ns = f"sosplice-perf-{os.getpid()}"
    run = ["ip", "netns", "exec", ns]
    subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
    server = None
    try:
        subprocess.run([*run, "ip", "link", "set", "lo", "up"], check=True, capture_output=True)
        server = Proc([*run, "iperf3", "-s", "-1", "--forceflush", "-p", "5201"], "iperf3 server")
        server.wait_text("Server listening", START)
        client = subprocess.run([*run, "iperf3", "-c", "127.0.0.1", "-p", "5201", "-t", str(seconds), "-J"],
                                capture_output=True, text=True, timeout=seconds + 30, check=False)
        if client.returncode != 0:
            return None
        report = json.loads(client.stdout)
        received = report.get("end", {}).get("sum_received")
        if not received:
            return None
        bps = float(received["bits_per_second"])
        cpu = report["end"].get("cpu_utilization_percent", {})
        gb = bps * seconds / 8 / 1e9
        cpu_s = (float(cpu.get("host_total", 0)) + float(cpu.get("remote_total", 0))) / 100 * seconds
        return Sample(gbps=bps / 1e9, dgrams_per_s=0.0, cpu_s_per_gb=cpu_s / gb if gb else 0.0)
    finally:
        if server is not None:
            server.kill()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
