"""The relay daemon: TCP and HTTP relaying on the Splicer, in copy or splice mode.

One thread per direction of a session. A direction reads heads, chunk-size
lines and chunk ends in userland, peeking so that it never consumes a byte of
a body: every body byte is then either spliced (splice mode, backend
connected) or copied, and the spliced counts per session are exact. See the
package docstring for the behaviour, section 3 of spec/relayd-cases.md for
relayd's.

Stdlib only.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..splice.api import Splicer
from .config import RelaydConfig
from .http import (
    BODYLESS_REQUESTS,
    HttpError,
    apply_rules,
    chunk_size,
    chunked,
    content_length,
    header_end,
    parse_head,
)

UNLIMITED = -1  # body until EOF
CHUNKED = -2  # chunked transfer encoding
DEFAULT_TIMEOUT = 600.0  # relayd's default session timeout
HEADER_LIMIT = 8192  # relayd's default header length limit
LINE_LIMIT = 4096
COPY_SIZE = 16384


class Closed(Exception):
    """The session is closing; the direction stops."""


class Output:
    """Log lines and events: JSON lines for the harness, plain text by hand."""

    def __init__(self, json_events: bool) -> None:
        self.json = json_events
        self.lock = threading.Lock()

    def event(self, name: str, **fields: Any) -> None:
        if self.json:
            os.write(1, (json.dumps({"event": name, **fields}) + "\n").encode())

    def last_words(self, text: str) -> None:
        """A log line from a signal handler: no lock (the interrupted thread may hold it), one write."""
        if self.json:
            os.write(1, (json.dumps({"event": "log", "role": "relay", "text": text}) + "\n").encode())
        else:
            os.write(2, (text + "\n").encode())

    def log(self, text: str) -> None:
        with self.lock:
            if self.json:
                self.event("log", role="relay", text=text)
            else:
                sys.stderr.write(text + "\n")
                sys.stderr.flush()


class Direction:
    """One direction of a session: its source, its drain, what it has moved."""

    def __init__(self, session: Session, name: str, src: socket.socket) -> None:
        self.session = session
        self.name = name  # "request" or "response"
        self.src = src
        self.dst: socket.socket | None = None
        self.pending = bytearray()  # output before the backend is connected
        self.spliced = False
        self.moved = 0  # bytes moved by finished copies and splices
        self.checked = 0  # what the last progress check saw
        self.timedout = False
        self.spliced_bytes = 0

    # ---- progress, as relay_splicelen sees it

    def current(self) -> int:
        sp = self.session.daemon.splicer
        return self.moved + (sp.length(self.src) if self.spliced else 0)

    def progress(self) -> bool:
        now = self.current()
        grew = now > self.checked
        self.checked = now
        return grew

    # ---- reading in userland

    def wait(self) -> None:
        """Wait until the source is readable; a read timeout goes through the session's rules."""
        s = self.session
        while True:
            if s.closed:
                raise Closed
            ready = s.daemon.splicer.wait_readable(self.src, s.timeout)
            if s.closed:
                raise Closed
            if ready:
                return
            s.read_timeout(self)

    def recv(self, size: int, flags: int = 0) -> bytes:
        try:
            return self.session.daemon.splicer.recv(self.src, size, flags)
        except OSError as e:
            if self.session.closed:
                raise Closed from None
            self.session.close("buffer event error" if e.errno != errno.ECONNRESET else "done")
            raise Closed from None

    def read_until(self, find: Callable[[bytes, int], int | None], limit: int,
                   too_long: str) -> bytes | None:
        """Bytes up to and including what `find` locates; None at EOF. Never reads past it."""
        acc = b""
        while True:
            self.wait()
            peek = self.recv(65536, socket.MSG_PEEK)
            if not peek:
                return None
            data = acc + peek
            end = find(data, max(0, len(acc) - 3))
            take = (end - len(acc)) if end is not None else len(peek)
            if end is None and len(data) > limit:
                self.session.close(too_long)
                raise Closed
            got = b""
            while len(got) < take:
                piece = self.recv(take - len(got))
                if not piece:
                    return None
                got += piece
            acc += got
            if end is not None:
                return acc

    def read_head(self) -> bytes | None:
        return self.read_until(header_end, HEADER_LIMIT, "413 Payload Too Large")

    def read_line(self) -> bytes | None:
        def eol(data: bytes, start: int) -> int | None:
            i = data.find(b"\n", start)
            return None if i < 0 else i + 1

        return self.read_until(eol, LINE_LIMIT, "chunk size too long")

    # ---- writing

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self.dst is None:
            self.pending += data
            return
        try:
            self.dst.sendall(data)
        except OSError:
            if not self.session.closed:
                self.session.close("buffer event error")
            raise Closed from None

    # ---- bodies

    def body(self, toread: int) -> bool:
        """Relay a body of `toread` bytes (or UNLIMITED); False when it ended at EOF."""
        if toread == 0:
            return True
        s = self.session
        if s.daemon.cfg.splice and self.dst is not None:
            return self.splice(toread if toread > 0 else 0)
        remaining = toread
        while remaining != 0:
            self.wait()
            data = self.recv(COPY_SIZE if remaining < 0 else min(remaining, COPY_SIZE))
            if not data:
                return False
            self.write(data)
            with s.lock:
                self.moved += len(data)
            if remaining > 0:
                remaining -= len(data)
        return True

    def splice(self, maximum: int) -> bool:
        """Splice with max = the body length (0: until EOF). True when max was reached."""
        s = self.session
        sp = s.daemon.splicer
        assert self.dst is not None
        remaining = maximum
        while True:
            try:
                with s.lock:
                    if s.closed:
                        raise Closed
                    sp.splice(self.src, self.dst, remaining, s.timeout or 0.0)
                    self.spliced = True
            except OSError:
                s.close("buffer event error")
                raise Closed from None
            sp.wait_readable(self.src, None)
            with s.lock:
                moved = sp.length(self.src)
                err = sp.error(self.src)
                self.moved += moved
                self.spliced_bytes += moved
                self.spliced = False
            if remaining:
                remaining -= moved
            if s.closed:
                raise Closed
            if err == errno.EFBIG or (maximum and remaining <= 0):
                return True
            if err == errno.ETIMEDOUT:
                s.splice_timeout(self)
                continue
            if err and err not in (errno.EPIPE, errno.ECONNRESET):
                s.close("buffer event error")
                raise Closed
            if err:
                s.close("done")
                raise Closed
            return False  # EOF

    def chunks(self) -> bool:
        """A chunked body: size lines and chunk ends in userland, chunk data as bodies."""
        s = self.session
        while True:
            line = self.read_line()
            if line is None:
                return False
            try:
                size = chunk_size(line)
            except HttpError as e:
                s.close(str(e))
                raise Closed from None
            self.write(line.rstrip(b"\r\n") + b"\r\n")
            if size == 0:
                while True:  # trailer, up to the empty line
                    trailer = self.read_line()
                    if trailer is None:
                        return False
                    self.write(trailer.rstrip(b"\r\n") + b"\r\n")
                    if not trailer.strip():
                        return True
            if not self.body(size):
                return False
            end = self.read_line()
            if end is None:
                return False
            self.write(end.rstrip(b"\r\n") + b"\r\n")


class Session:
    def __init__(self, daemon: Daemon, sid: int, client: socket.socket,
                 peer: tuple[str, int]) -> None:
        self.daemon = daemon
        self.id = sid
        self.client = client
        self.peer = peer
        self.server: socket.socket | None = None
        self.lock = threading.RLock()
        self.closed = False
        self.reason = ""
        self.log: list[str] = []
        self.methods: deque[str] = deque()
        timeout = daemon.cfg.session_timeout
        self.timeout = (timeout if timeout is not None else DEFAULT_TIMEOUT) * daemon.scale
        self.request = Direction(self, "request", client)
        self.response: Direction | None = None
        self.response_thread: threading.Thread | None = None

    def other(self, d: Direction) -> Direction | None:
        return self.response if d is self.request else self.request

    # ---- closing

    def close(self, reason: str) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
            self.reason = reason
        sp = self.daemon.splicer
        for sock in (self.client, self.server):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sp.shutdown(sock, socket.SHUT_RDWR)

    # ---- timeouts (spec 3.6)

    def read_timeout(self, d: Direction) -> None:
        """No data on an unspliced direction for the session timeout (bufferevent timeout)."""
        with self.lock:
            other = self.other(d)
            if other is not None and other.progress():
                if other.spliced:
                    d.timedout = True
                return
        self.close("buffer event timeout")
        raise Closed

    def splice_timeout(self, d: Direction) -> None:
        """ETIMEDOUT on a spliced direction: close unless the other one moved; else splice again."""
        with self.lock:
            other = self.other(d)
            if other is not None and other.spliced:
                if other.progress():
                    return
            elif other is None or not other.timedout:
                return
        self.close("splice timeout")
        raise Closed

    # ---- connecting

    def connect(self) -> None:
        cfg = self.daemon.cfg
        s = socket.socket(socket.AF_INET6 if ":" in cfg.forward[0] else socket.AF_INET,
                          socket.SOCK_STREAM)
        self.daemon.sockopts(s)
        try:
            s.connect(cfg.forward)
        except OSError as e:
            s.close()
            self.close(f"session failed: {os.strerror(e.errno) if e.errno else e}")
            raise Closed from None
        with self.lock:
            if self.closed:
                s.close()
                raise Closed
            self.server = s
            self.request.dst = s
            self.response = Direction(self, "response", s)
            self.response.dst = self.client
        pending = bytes(self.request.pending)
        self.request.pending.clear()
        self.request.write(pending)
        target = self.run_http_response if cfg.http else self.run_tcp_response
        self.response_thread = threading.Thread(target=self.guard, args=(target,), daemon=True)
        self.response_thread.start()

    # ---- the directions

    def guard(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Closed:
            pass
        except Exception as e:  # a daemon bug must not take other sessions down
            self.daemon.out.log(f"session {self.id}: internal error: {type(e).__name__}: {e}")
            self.close("internal error")

    def run(self) -> None:
        self.guard(self.run_http_request if self.daemon.cfg.http else self.run_tcp_request)
        if self.response_thread is not None:
            self.response_thread.join()
        self.finish()

    def run_tcp_request(self) -> None:
        self.connect()
        self.request.body(UNLIMITED)
        self.close("done")

    def run_tcp_response(self) -> None:
        assert self.response is not None
        self.response.body(UNLIMITED)
        self.close("done")

    def run_http_request(self) -> None:
        d = self.request
        while True:
            raw = d.read_head()
            if raw is None:
                self.close("done")
                return
            try:
                head = parse_head(raw, request=True)
                items, decision = apply_rules(self.daemon.cfg.rules, "request", head)
                self.log += [f" [{item}]" for item in items]
                self.log.append(f" {head.method}")
                if decision is not None and decision.action == "block":
                    self.forbidden()
                if head.method in BODYLESS_REQUESTS:
                    head.remove("Content-Length")
                    toread = 0
                elif chunked(head):
                    toread = CHUNKED
                else:
                    length = content_length(head)
                    toread = UNLIMITED if length is None else length
            except HttpError as e:
                self.close(str(e))
                return
            if toread == UNLIMITED and head.get("Connection") is None:
                head.headers.append(("Connection", "close"))
            self.methods.append(head.method)
            d.write(head.serialize())
            if self.server is None and toread <= 0:
                self.connect()  # late connect: after the first head without a pending body
            if toread == CHUNKED:
                if not d.chunks():
                    self.close("done")
                    return
            elif not d.body(toread):
                self.close("done")
                return
            if self.server is None and not self.input_waiting(d):
                self.connect()

    def input_waiting(self, d: Direction) -> bool:
        try:
            return bool(d.src.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
        except BlockingIOError:
            return False
        except OSError:
            return True

    def run_http_response(self) -> None:
        d = self.response
        assert d is not None
        while True:
            raw = d.read_head()
            if raw is None:
                self.close("done")
                return
            try:
                head = parse_head(raw, request=False)
                method = self.methods.popleft() if self.methods else ""
                items, decision = apply_rules(self.daemon.cfg.rules, "response", head)
                self.log += [f" {{{item}}}" for item in items]
                self.log.append(";")
                if decision is not None and decision.action == "block":
                    self.forbidden()
                if method == "HEAD" or head.status in (204, 304) or 100 <= head.status < 200:
                    toread = 0
                elif chunked(head):
                    toread = CHUNKED
                else:
                    length = content_length(head)
                    toread = UNLIMITED if length is None else length
            except HttpError as e:
                self.close(str(e))
                return
            if toread == UNLIMITED and head.get("Connection") is None:
                head.headers.append(("Connection", "close"))
            d.write(head.serialize())
            ok = d.chunks() if toread == CHUNKED else d.body(toread)
            if not ok:
                self.close("done")
                return

    def forbidden(self) -> None:
        if self.daemon.cfg.return_error:
            body = (b"<!DOCTYPE html>\n<html><head><title>403 Forbidden</title></head>"
                    b"<body><h1>403 Forbidden</h1></body></html>\n")
            page = (
                "HTTP/1.0 403 Forbidden\r\n"
                f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S GMT', time.gmtime())}\r\n"
                "Server: OpenBSD relayd\r\nConnection: close\r\nContent-Type: text/html\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            with contextlib.suppress(OSError):
                self.client.sendall(page)
            self.close("Forbidden (403 Forbidden)")
        else:
            self.close("Forbidden")
        raise Closed

    # ---- the end

    def finish(self) -> None:
        d = self.daemon
        with d.lock:
            active = len(d.sessions)
            d.sessions.pop(self.id, None)
        cfg = d.cfg
        log = "," + "".join(self.log) if self.log else ""
        spliced_in = self.request.spliced_bytes
        spliced_out = self.response.spliced_bytes if self.response else 0
        # before the close line: a reader that saw the close line has seen this one too
        d.out.log(f"session {self.id} spliced request {spliced_in} response {spliced_out}")
        d.out.log(f"relay {cfg.relay_name}, session {self.id} ({active} active), 0, "
                  f"{self.peer[0]} -> {cfg.forward[0]}:{cfg.forward[1]}, {self.reason}{log}")
        d.out.event("session", id=self.id, reason=self.reason, request=spliced_in,
                    response=spliced_out)
        for sock in (self.client, self.server):
            if sock is not None:
                with contextlib.suppress(OSError):
                    d.splicer.close(sock)


class Daemon:
    def __init__(self, cfg: RelaydConfig, splicer: Splicer, out: Output, scale: float = 1.0) -> None:
        self.cfg = cfg
        self.splicer = splicer
        self.out = out
        self.scale = scale
        self.lock = threading.Lock()
        self.sessions: dict[int, Session] = {}
        self.next_id = 1

    def sockopts(self, s: socket.socket) -> None:
        if self.cfg.nodelay:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.cfg.socket_buffer:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.cfg.socket_buffer)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.cfg.socket_buffer)

    def listen(self) -> socket.socket:
        host, port = self.cfg.listen
        lsock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sockopts(lsock)
        lsock.bind((host, port))
        lsock.listen(16)
        return lsock

    def serve(self, lsock: socket.socket) -> None:
        host, port = lsock.getsockname()[:2]
        mode = "splice" if self.cfg.splice else "copy"
        self.out.log(f"relay_launch: {self.cfg.relay_name} listening on {host} port {port} ({mode})")
        self.out.event("listening", role="relay", host=host, port=port)
        self.out.event("up", role="relay")
        while True:
            conn, peer = lsock.accept()
            self.sockopts(conn)
            with self.lock:
                sid = self.next_id
                self.next_id += 1
                session = Session(self, sid, conn, peer)
                self.sessions[sid] = session
            self.out.event("accept", id=sid)
            threading.Thread(target=session.run, name=f"session-{sid}", daemon=True).start()
