"""Run one role from a JSON spec on stdin; report JSON-line events on stdout.

    python3 -m harness.agent < spec.json

Events: {"event": "listening", "host", "port"} once a listen socket is bound,
{"event": "log", "role", "text"} for every log line, {"event": "up", "role"}
when the role is connected, {"event": "result", ...} for API scripts. The
role that binds port 0 reports the port it got; nobody guesses one.

Stdlib only, and no import outside this package: the agent is copied to a
stock OpenBSD host and run there under `python3 -I -S`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import signal
import socket
import sys
from typing import Any

from . import leash, ports
from .splice import BackendError, load_splicer
from .splice.api import Splicer, errno_name
from .steps import API_OPS, ApiState, Ctx, RoleError, close_like_bsd, run_steps

DEFAULT_STEPS = {
    ("client", "tcp"): ["write_stream"],
    ("client", "udp"): ["write_datagram"],
    ("relay", "tcp"): ["relay"],
    ("relay", "udp"): ["relay"],
    ("server", "tcp"): ["read_stream"],
    ("server", "udp"): ["read_datagram"],
}


def emit(event: str, **fields: Any) -> None:
    """One JSON line, written in one system call so forked roles never interleave."""
    line = json.dumps({"event": event, **fields}) + "\n"
    os.write(1, line.encode())


def family(domain: str | None) -> tuple[socket.AddressFamily, str]:
    if domain == "inet6":
        return socket.AF_INET6, "::1"
    return socket.AF_INET, "127.0.0.1"


def apply_options(sock: socket.socket, opts: dict[str, Any], tcp: bool) -> None:
    if opts.get("oobinline") and tcp:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1)
    if opts.get("sndbuf"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, opts["sndbuf"])
    if opts.get("rcvbuf"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, opts["rcvbuf"])
    if tcp:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Role:
    def __init__(self, spec: dict[str, Any], splicer: Splicer) -> None:
        self.spec = spec
        self.name: str = spec["role"]
        self.opts: dict[str, Any] = spec.get("opts", {})
        self.protocol: str = spec.get("protocol", "tcp")
        self.tcp = self.protocol == "tcp"
        self.ctx = Ctx(
            role=self.name, opts=self.opts, mode=spec.get("mode", "copy"),
            protocol=self.protocol, splicer=splicer, scale=float(spec.get("scale", 1.0)),
            log=self.log,
        )
        self.ctx.vars["conserve"] = spec.get("conserve") or ""  # the case's conservation check

    def log(self, text: str) -> None:
        emit("log", role=self.name, text=text)

    def socktype(self) -> socket.SocketKind:
        return socket.SOCK_STREAM if self.tcp else socket.SOCK_DGRAM

    def listen(self) -> socket.socket:
        fam, host = family(self.opts.get("listendomain"))

        def make() -> socket.socket:
            s = socket.socket(fam, self.socktype())
            if self.tcp:
                # never for UDP: Linux hands a port bound with SO_REUSEADDR to the next such
                # bind to port 0, and the later socket then takes the earlier one's datagrams
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            apply_options(s, self.opts, self.tcp)
            return s

        s = ports.bind_reachable(make, self.spec.get("listen") or host)
        if self.tcp:
            s.listen(1)
        addr = s.getsockname()
        self.log(f"listen sock: {addr[0]} {addr[1]}")
        emit("listening", role=self.name, host=addr[0], port=addr[1])
        return s

    def accept(self, lsock: socket.socket) -> socket.socket:
        s, peer = lsock.accept()
        lsock.close()
        if self.opts.get("nonblocking"):
            s.setblocking(False)
        self.log(f"accept peer: {peer[0]} {peer[1]}")
        return s

    def connect(self) -> socket.socket:
        host, port = self.spec["connect"]
        fam, _ = family(self.opts.get("connectdomain"))
        if ":" in host:
            fam = socket.AF_INET6
        s = socket.socket(fam, self.socktype())
        apply_options(s, self.opts, self.tcp)
        if self.opts.get("connectnonblocking"):
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                s.connect((host, port))
        else:
            s.connect((host, port))
        if self.opts.get("nonblocking"):
            s.setblocking(False)
        self.log(f"connect peer: {host} {port}")
        return s

    def arm_alarm(self) -> None:
        if self.opts.get("alarm"):
            signal.setitimer(signal.ITIMER_REAL, self.ctx.seconds(self.opts["alarm"]))

    def steps(self, role: str | None = None) -> list[Any]:
        role = role or self.name
        opts = self.opts if role == self.name else self.spec.get("child_opts", {})
        return list(opts.get("steps") or DEFAULT_STEPS[(role, self.protocol)])

    def run(self) -> None:
        ctx = self.ctx
        if self.name == "server":
            lsock = self.listen()
            sock = self.accept(lsock) if self.tcp else lsock
            self.log("Accepted")
            ctx.stdin = ctx.stdout = sock
        elif self.name == "relay":
            lsock = self.listen()
            if self.spec.get("variant") == "echo":
                sock = self.accept(lsock)
                self.log("Accepted")
                ctx.stdin = ctx.stdout = sock
            elif self.tcp:
                ctx.stdin = self.accept(lsock)
                self.log("Accepted")
                if self.opts.get("clientreadable"):
                    self.await_readable(ctx.stdin)
                ctx.stdout = self.connect()
                self.log("Connected")
            else:
                ctx.stdin = lsock
                ctx.stdout = self.connect()
                self.log("Connected")
        elif self.name == "client":
            sock = self.connect()
            self.log("Connected")
            ctx.stdin = ctx.stdout = sock
        else:
            raise RoleError(f"unknown role {self.name!r}")
        emit("up", role=self.name)
        if self.spec.get("hold"):
            self.await_go()
        self.arm_alarm()
        if self.name == "client" and self.spec.get("variant") == "echo":
            self.run_echo_client()
        else:
            run_steps(ctx, self.steps())
        self.log("Shutdown")

    def await_readable(self, sock: socket.socket, timeout: float = 15.0) -> None:
        """scapy.pl's clientreadable: connect to the server only once the client has sent."""
        if not select.select([sock], [], [], timeout)[0]:
            raise RoleError(f"{self.name.capitalize()} select timeout")

    def await_go(self) -> None:
        """Held until the controller has every role up: scenario time starts together."""
        if sys.stdin.readline().strip() != "go":
            raise RoleError(f"{self.name}: controller went away before the start")
        if self.spec.get("watch_stdin"):
            leash.end_with_stdin()

    def run_echo_client(self) -> None:
        """echo.pl: a forked child reads what the self-spliced relay sends back."""
        ctx = self.ctx
        pid = os.fork()
        if pid == 0:
            child = Role({**self.spec, "role": "server", "opts": self.spec.get("child_opts", {})},
                         ctx.splicer)
            child.ctx.stdin = child.ctx.stdout = ctx.stdin
            code = 0
            try:
                emit("up", role="server")
                child.log("Forked")
                run_steps(child.ctx, child.steps())
                shutdown_write(ctx.dst)
                child.log("Shutdown")
            except BaseException as e:  # the child must never return into the parent's code
                code = finish_error(child, e)
            os._exit(code)
        run_steps(ctx, self.steps())
        shutdown_write(ctx.dst)
        os.waitpid(pid, 0)


def shutdown_write(sock: socket.socket) -> None:
    """Parent and child of echo.pl both shut the shared socket down; the second may find it gone."""
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError as e:
        if e.errno != errno.ENOTCONN:
            raise


def finish_error(role: Role, e: BaseException) -> int:
    """Upstream's die handler: log and exit 255, or 0 under errignore."""
    text = str(e) if isinstance(e, RoleError | OSError) else f"{type(e).__name__}: {e}"
    if role.ctx.errignore:
        role.log("Error ignored")
        role.ctx.log_errors()
        role.log(text)
        return 0
    role.log(text)
    return 255


def run_api(spec: dict[str, Any], splicer: Splicer) -> int:
    state = ApiState(splicer=splicer, scale=float(spec.get("scale", 1.0)))
    try:
        for index, op in enumerate(spec["script"]):
            name, *args = op
            kwargs: dict[str, Any] = {}
            if args and isinstance(args[-1], dict):
                kwargs = args.pop()
            fn = API_OPS.get(name)
            if fn is None:
                emit("error", message=f"unknown API operation {name!r}")
                return 2
            try:
                fn(state, *args, **kwargs)
            except OSError as e:
                emit("result", index=index, op=op, errno=errno_name(e.errno))
                return 0
            except RoleError as e:
                emit("error", message=f"operation {index} {op}: {e}")
                return 1
        emit("result", index=None, op=None, errno="0")
        return 0
    finally:
        state.close_all()


def main() -> int:
    leash.end_with_parent()
    leash.lead_group()  # a remote agent is started by a shell: its group takes what it forks
    try:
        raw = sys.stdin.readline()  # one JSON line; a held role gets "go" on the next line
        try:
            spec = json.loads(raw)
        except ValueError:
            spec = json.loads(raw + sys.stdin.read())
    except ValueError as e:
        emit("error", message=f"agent: spec on stdin is not JSON: {e}")
        return 2
    if spec.get("watch_stdin") and not spec.get("hold"):
        leash.end_with_stdin()  # the starter keeps our stdin open while it wants us (a remote role)
    try:
        splicer = load_splicer(spec.get("backend", "emulated"), spec.get("personality", "openbsd"))
    except BackendError as e:
        emit("error", message=str(e))
        return 2
    emit("hello", pid=os.getpid(), sysname=os.uname().sysname, personality=splicer.personality.name)
    if spec.get("role") == "api":
        return run_api(spec, splicer)
    if spec.get("role") == "perf-relay":  # python -m harness.perf --target ssh://...
        from .perf.relay import run_spec

        return run_spec(spec, splicer)
    role = Role(spec, splicer)
    try:
        role.run()
    except (RoleError, OSError) as e:
        return finish_error(role, e)
    finally:
        close_like_bsd(role.ctx)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)
