"""python -m harness.perf: what splicing buys, direct vs copy vs splice, TCP and UDP on loopback.

Each path is measured in repeated bounded runs (--seconds each); the report gives
the median and spread of Gbit/s (and datagrams/s for UDP), CPU seconds per GB of
all processes involved, and the splice/copy factor. socat and haproxy are measured
beside ours when installed, iperf3 as the reference for the load generators.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .measure import OURS, Sample, available_peers, iperf3, run_path
from .procs import PerfError
from .relay import SOCKBUF
from .remote import PerfTarget
from .report import Summary, chart, table, to_json


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m harness.perf", description=__doc__.splitlines()[0])
    p.add_argument("--proto", default="tcp,udp", help="tcp, udp or both (default tcp,udp)")
    p.add_argument("--paths", default=",".join(OURS), help="direct,copy,splice (default all)")
    p.add_argument("--seconds", type=float, default=2.0, help="length of one run (default 2)")
    p.add_argument("--repeat", type=int, default=3, help="runs per path (default 3)")
    p.add_argument("--backend", default="emulated", help="splice backend of the relay (default emulated)")
    p.add_argument("--personality", default="openbsd")
    p.add_argument("--sockbuf", type=int, default=0,
                   help=f"SO_RCVBUF/SO_SNDBUF of every relay, ours and the peers (default 0: the "
                        f"kernel's, autotuned; relay.c sets {SOCKBUF})")
    p.add_argument("--target", default="local",
                   help="local (default) or ssh://[user@]host[:port]: our relays run there, on its "
                        "splicer (native on OpenBSD/FreeBSD), client and server here; no peers then")
    p.add_argument("--ssh-option", action="append", default=[], metavar="ARG",
                   help="one argument for ssh, repeatable (--ssh-option=-i --ssh-option=KEY)")
    p.add_argument("--local-addr", default="127.0.0.1",
                   help="this machine as the target reaches it; the sink listens there (default 127.0.0.1)")
    p.add_argument("--remote-addr", default="127.0.0.1",
                   help="the target as this machine reaches it; the relay listens there (default 127.0.0.1)")
    p.add_argument("--ssh-timeout", type=float, default=10.0, help="ssh ConnectTimeout (default 10 s)")
    p.add_argument("--no-peers", action="store_true", help="do not measure socat, haproxy, iperf3")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--png", type=Path, help="write a bar chart (needs matplotlib)")
    args = p.parse_args(argv)
    args.protos = [x for x in args.proto.split(",") if x]
    args.path_list = [x for x in args.paths.split(",") if x]
    bad = [x for x in args.protos if x not in ("tcp", "udp")] + [x for x in args.path_list if x not in OURS]
    if args.target != "local" and args.backend != "emulated":
        p.error("--backend is decided by the target's OS with --target ssh://...")
    if bad or args.seconds <= 0 or args.repeat < 1 or args.sockbuf < 0 or args.ssh_timeout <= 0:
        p.error(f"invalid value(s): {', '.join(bad) or 'seconds and repeat must be positive, sockbuf not negative'}")
    return args


def unsupported(proto: str, target: Any) -> str:
    """Why the target's splicer cannot relay this protocol ("" when it can)."""
    remote = getattr(target, "remote", None)
    if proto == "udp" and remote is not None and getattr(remote, "personality", "") == "freebsd":
        return f"{getattr(remote, 'sysname', 'FreeBSD')} splices TCP only (semantics 5.1)"
    return ""


def main(argv: list[str]) -> int:
    args = parse(argv)
    from harness.splice import BackendError, check_backend_class

    try:
        check_backend_class(args.backend)
    except BackendError as e:
        print(f"harness.perf: {e}", file=sys.stderr)
        return 2
    rows: list[Summary] = []
    target: PerfTarget | None = None
    peers = not args.no_peers and args.target == "local"  # peers and iperf3 run here only
    try:
        if args.target != "local":
            target = PerfTarget(args.target, args.ssh_option, args.local_addr, args.remote_addr,
                                args.ssh_timeout)
            print(f"relay on {target.describe()}", file=sys.stderr)
        for proto in args.protos:
            why = unsupported(proto, target)
            if why:
                print(f"harness.perf: {proto} not measured: {why}", file=sys.stderr)
                continue
            paths = list(args.path_list)
            if peers:
                paths += available_peers(proto)
            for path in paths:
                samples = [run_path(proto, path, args.seconds, args.backend, args.personality,
                                    sockbuf=args.sockbuf, target=target)
                           for _ in range(args.repeat)]
                rows.append(Summary.of(proto, path, samples))
            if proto == "tcp" and peers:
                ref = [s for s in (iperf3(args.seconds) for _ in range(args.repeat)) if s is not None]
                if ref:
                    rows.append(Summary.of("tcp", "iperf3", list[Sample](ref)))
    except PerfError as e:
        print(f"harness.perf: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("harness.perf: interrupted", file=sys.stderr)
        return 130
    finally:
        if target is not None:
            note = target.close()
            if note:
                print(f"harness.perf: {note}", file=sys.stderr)
    backend, personality = (target.remote.backend, target.remote.personality) if target else (
        args.backend, args.personality)
    meta = {"seconds": args.seconds, "repeat": args.repeat, "backend": backend,
            "personality": personality, "sockbuf": args.sockbuf,
            "target": target.describe() if target else "local"}
    print(to_json(rows, meta) if args.json else table(rows, meta))
    if args.png and not chart(rows, args.png):
        print("harness.perf: no chart: matplotlib is not installed (pip install '.[perf]')", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
