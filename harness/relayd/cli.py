"""Command line of the relay daemon (`python -m harness.relayd`)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from types import FrameType

from .. import leash
from ..splice import BackendError, load_splicer
from .config import ConfigError, parse
from .daemon import Daemon, Output


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.relayd",
                                 description="relay daemon for the relayd cases (a relayd.conf subset)")
    ap.add_argument("-f", dest="file", required=True, help="configuration file")
    ap.add_argument("-n", dest="check", action="store_true", help="check the configuration only")
    ap.add_argument("-d", action="store_true", help="ignored (always in the foreground)")
    ap.add_argument("-v", action="count", default=0, help="ignored")
    ap.add_argument("--json", action="store_true", help="JSON-line events on stdout (for the harness)")
    ap.add_argument("--splice-backend", default=os.environ.get("SPLICE_BACKEND", "emulated"))
    ap.add_argument("--splice-personality", default=os.environ.get("SPLICE_PERSONALITY", "openbsd"))
    ap.add_argument("--time-scale", type=float, default=1.0,
                    help="factor for the session timeout (the suite's --splice-time-scale)")
    args = ap.parse_args(argv)
    if not args.check:
        leash.end_with_parent()  # the daemon ends with the run that started it
    out = Output(args.json)
    try:
        with open(args.file) as f:
            text = f.read()
        cfg = parse(text, args.file)
    except (OSError, ConfigError) as e:
        message = str(e) if isinstance(e, ConfigError) else f"{args.file}: {e.strerror}"
        out.event("error", message=message)
        print(message, file=sys.stderr)
        return 1
    if args.check:
        print("configuration OK", file=sys.stderr)
        return 0
    try:
        splicer = load_splicer(args.splice_backend, args.splice_personality)
    except BackendError as e:
        out.event("error", message=str(e))
        print(e, file=sys.stderr)
        return 2

    def terminate(signum: int, frame: FrameType | None) -> None:
        out.last_words("parent terminating")
        os._exit(0)

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)
    daemon = Daemon(cfg, splicer, out, scale=args.time_scale)
    try:
        lsock = daemon.listen()
    except OSError as e:
        out.event("error", message=f"listen on {cfg.listen[0]} port {cfg.listen[1]}: {e.strerror}")
        print(f"listen on {cfg.listen[0]} port {cfg.listen[1]}: {e.strerror}", file=sys.stderr)
        return 1
    daemon.serve(lsock)
    return 0
