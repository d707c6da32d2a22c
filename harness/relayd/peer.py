"""Client and server of the relayd cases, one process each (relayd-cases section 1.5).

    python -m harness.relayd.peer < spec.json

The spec names the role ("client" or "server"), its function and options; the
events are the agent's (listening, up, log). Log texts keep upstream's words
(LEN, MD5, `Client missing http N response`, `blocked write`, Shutdown).

A client function may wait for a signal: the controller sends SIGUSR1 when
another role logged what the case waits for (server Accepted, blocked write).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import signal
import socket
import sys
import time
from io import BufferedReader
from typing import Any

from .. import leash
from ..steps import stream_bytes

Length = int | list[int]


def emit(event: str, **fields: Any) -> None:
    os.write(1, (json.dumps({"event": event, **fields}) + "\n").encode())


class PeerError(Exception):
    """The role gives up (upstream's die); the text goes to the log."""


class MissingResponse(PeerError):
    pass


def block_bytes(length: int) -> bytes:
    """write_block's stream: 1000-byte blocks of ten-character lines, then a padded remainder."""
    full, rest = divmod(length, 1000)
    out = b"012345678\n" * 100 * full
    if rest:
        out += b"r" * max(0, rest - 2) + b"\n\n"[: min(rest, 2)]
    return out


def request_head(method: str, path: str, vers: str, length: Length | None = None,
                 header: dict[str, str] | None = None, cookie: str = "") -> bytes:
    """What http_client sends before a body."""
    header = header or {}
    lines = [f"{method} {path} HTTP/{vers}"]
    if "Host" not in header:
        lines.append("Host: foo.bar")
    if vers == "1.1" and method == "PUT" and "Content-Length" not in header and length is not None:
        lines.append("Transfer-Encoding: chunked" if isinstance(length, list) else f"Content-Length: {length}")
    lines += [f"{k}: {v}" for k, v in sorted(header.items())]
    if cookie:
        lines.append(f"Cookie: {cookie}")
    return ("\r\n".join([*lines, "", ""])).encode()


def response_head(method: str, vers: str, length: Length, cookie: str = "") -> bytes:
    """What http_server answers: length header for 1.1 GET/HEAD only."""
    lines = [f"HTTP/{vers} 200 OK"]
    if vers == "1.1" and method in ("GET", "HEAD"):
        lines.append("Transfer-Encoding: chunked" if isinstance(length, list) else f"Content-Length: {length}")
    if cookie:
        lines.append(f"Set-Cookie: {cookie}")
    return ("\r\n".join([*lines, "", ""])).encode()


def url_length(url: str) -> Length:
    numbers = [int(n) for n in re.findall(r"[0-9]+", url)]
    if not numbers:
        return len(url)
    return numbers[0] if len(numbers) == 1 else numbers


class Peer:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.role: str = spec["role"]
        self.opts: dict[str, Any] = spec.get("opts", {})
        self.scale = float(spec.get("scale", 1.0))
        self.up = False

    def log(self, text: str) -> None:
        emit("log", role=self.role, text=text)

    def die(self, text: str) -> PeerError:
        return PeerError(f"{self.role.capitalize()} {text}")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds * self.scale)

    def sockopts(self, s: socket.socket) -> None:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.opts.get("sndbuf"):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.opts["sndbuf"])
        if self.opts.get("rcvbuf"):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.opts["rcvbuf"])
        if self.opts.get("sndtimeo"):
            secs = self.opts["sndtimeo"] * self.scale
            tv = int(secs).to_bytes(8, sys.byteorder) + int((secs % 1) * 1e6).to_bytes(8, sys.byteorder)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)

    # ---- streams

    def send(self, sock: socket.socket, data: bytes) -> None:
        try:
            sock.sendall(data)
        except OSError as e:
            raise self.die(f"print failed: {os.strerror(e.errno or errno.EIO)}") from e

    def write_char(self, sock: socket.socket, length: int) -> None:
        data = stream_bytes(length)
        pause = self.opts.get("sleep")
        if pause:
            for i in range(len(data)):
                self.send(sock, data[i : i + 1])
                if i < len(data) - 1:
                    self.sleep(pause)
        else:
            self.send(sock, data)
        self.log(f"LEN: {length}")
        self.log(f"MD5: {hashlib.md5(data).hexdigest()}")

    def write_block(self, sock: socket.socket, length: int) -> None:
        data = block_bytes(length)
        off = 0
        while off < len(data):
            piece = data[off : off + 1000]
            try:
                n = sock.send(piece)
            except BlockingIOError:
                n = 0
            except OSError as e:
                raise self.die(f"print failed: {os.strerror(e.errno or errno.EIO)}") from e
            if n < len(piece):
                self.log(f"blocked write {n}/{len(piece)}: {os.strerror(errno.EWOULDBLOCK)}")
            off += n
        self.log(f"LEN: {length}")
        self.log(f"MD5: {hashlib.md5(data).hexdigest()}")

    def write_body(self, sock: socket.socket, length: int) -> None:
        pieces = self.opts.get("pieces")
        if self.opts.get("fast"):
            self.write_block(sock, length)
        elif pieces:  # [[len, pause after], ...] instead of one stream
            for n, pause in pieces:
                self.write_char(sock, n)
                if pause:
                    self.sleep(pause)
        else:
            self.write_char(sock, length)

    def read_char(self, r: BufferedReader, limit: int | None) -> None:
        md5 = hashlib.md5()
        total = 0
        if limit == 0:
            self.log("Max")
        else:
            while True:
                line = r.readline() if not self.opts.get("fast") else r.read1(65536)
                if not line:
                    break
                if limit is not None and total + len(line) > limit and self.opts.get("fast"):
                    line = line[: limit - total]
                total += len(line)
                md5.update(line)
                if limit is not None and total >= limit:
                    self.log("Max")
                    break
        self.log(f"LEN: {total}")
        self.log(f"MD5: {md5.hexdigest()}")

    def read_line(self, r: BufferedReader) -> str | None:
        line = r.readline()
        if not line:
            return None
        text = line.decode("latin-1").rstrip("\r\n")
        self.log(f"<<< {text}")
        return text

    def read_chunked(self, r: BufferedReader) -> None:
        while True:
            line = self.read_line(r)
            if line is None:
                raise self.die("missing chunk size")
            if not re.fullmatch(r"[0-9A-Fa-f]+", line):
                raise self.die(f"chunk size not hex: {line}")
            size = int(line, 16)
            if size == 0:
                break
            self.read_char(r, size)
            end = self.read_line(r)
            if end is None:
                raise self.die("missing chunk data end")
            if end:
                raise self.die(f"no chunk data end: {end}")
        while True:
            line = self.read_line(r)
            if line is None:
                raise self.die("missing chunk trailer")
            if not line:
                return

    def write_chunked(self, sock: socket.socket, chunks: list[int]) -> None:
        for n in chunks:
            self.send(sock, f"{n:x}\r\n".encode())
            self.write_char(sock, n)
            self.send(sock, b"\r\n")
        self.send(sock, f"0\r\nX-Chunk-Trailer: {' '.join(map(str, chunks))}\r\n\r\n".encode())

    # ---- client

    def connect(self) -> socket.socket:
        host, port = self.spec["connect"]
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sockopts(s)
        s.connect((host, port))
        if not self.up:
            self.log("Connected")
            emit("up", role=self.role)
            self.up = True
        return s

    def wait_signal(self, what: str, timeout: float = 8.0) -> None:
        """Wait for the controller's SIGUSR1 (another role logged `what`), with a deadline."""
        if signal.sigtimedwait([signal.SIGUSR1], timeout) is None:
            raise self.die(f"no {what} within {timeout:g} s")

    def response(self, r: BufferedReader, method: str, vers: str, length: Length) -> None:
        status = self.read_line(r)
        if status is None:
            raise MissingResponse(f"Client missing http {length} response")
        if not self.opts.get("httpnok") and not re.fullmatch(rf"HTTP/{re.escape(vers)} 200 OK", status):
            raise self.die("http response not ok")
        is_chunked = False
        while True:
            line = self.read_line(r)
            if line is None:
                raise self.die("missing http header end")
            if not line:
                break
            m = re.fullmatch(r"Content-Length: (.*)", line)
            if m and not isinstance(length, list) and int(m.group(1)) != length:
                raise self.die(f"bad content length {m.group(1)}")
            if line == "Transfer-Encoding: chunked":
                is_chunked = True
        if is_chunked:
            self.read_chunked(r)
        elif method == "GET":
            if self.opts.get("max") is not None:
                self.read_char(r, self.opts["max"])
            else:
                self.read_char(r, length if vers == "1.1" and isinstance(length, int) else None)

    def request(self, sock: socket.socket, r: BufferedReader, vers: str, length: Length) -> None:
        method = self.opts.get("method", "GET")
        path = self.opts.get("path")
        if path is None:
            path = "/".join(map(str, length)) if isinstance(length, list) else str(length)
        head = request_head(method, "/" + path, vers, length, self.opts.get("header"),
                            self.opts.get("cookie", ""))
        for line in head.decode().split("\r\n")[:-1]:
            self.log(f">>> {line}")
        self.send(sock, head)
        if method == "PUT":
            if isinstance(length, list):
                self.write_chunked(sock, length)
            else:
                self.write_body(sock, length)
        self.response(r, method, vers, length)

    def http_client(self) -> None:
        lengths: list[Length] = list(self.opts.get("lengths") or [self.opts.get("len", 251)])
        versions = self.opts.get("http_vers") or (["1.1", "1.0"] if self.opts.get("lengths") else ["1.0"])
        for vers in versions:
            todo = list(lengths)
            while todo:
                sock = self.connect()
                r = sock.makefile("rb")
                try:
                    while todo:
                        length = todo.pop(0)
                        try:
                            self.request(sock, r, vers, length)
                        except MissingResponse as e:
                            self.log(str(e))
                            break
                        if vers != "1.1":
                            break
                finally:
                    r.close()
                    sock.close()

    def write_client(self) -> None:
        sock = self.connect()
        self.write_body(sock, self.opts.get("len", 251))
        sock.close()

    def read_client(self) -> None:
        sock = self.connect()
        with sock, sock.makefile("rb") as r:
            self.read_char(r, self.opts.get("max"))

    def script_client(self) -> None:
        """A hand-written exchange: send, response, signal, eof, log steps."""
        sock = self.connect()
        r = sock.makefile("rb")
        for op, *args in self.opts["script"]:
            if op == "send":
                for line in args[0].splitlines():
                    self.log(f">>> {line}")
                self.send(sock, args[0].encode("latin-1"))
            elif op == "response":
                self.response(r, args[0], args[1], args[2])
            elif op == "signal":
                self.wait_signal(args[0])
            elif op == "log":
                self.log(args[0])
            elif op == "eof":
                while r.read1(65536):
                    pass
            else:
                raise self.die(f"unknown script step {op}")
        r.close()
        sock.close()

    def slow_consumer(self) -> None:
        """Read the head and `max` body bytes, wait until the server blocks, read the rest."""
        length = self.opts["len"]
        sock = self.connect()
        r = sock.makefile("rb")
        self.send(sock, request_head("GET", f"/{length}", "1.0"))
        status = self.read_line(r)
        if status is None:
            raise MissingResponse(f"Client missing http {length} response")
        while self.read_line(r):
            pass
        first = r.read(self.opts.get("max", 100))
        self.log("going to sleep")
        self.wait_signal("blocked write in server log")
        total = len(first)
        while True:
            data = r.read1(65536)
            if not data:
                break
            total += len(data)
        self.log(f"LEN: {total}")
        r.close()
        sock.close()

    # ---- server

    def serve(self) -> None:
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind((self.spec.get("listen", "127.0.0.1"), 0))  # a remote relayd: --splice-local-addr
        lsock.listen(1)
        host, port = lsock.getsockname()
        self.log(f"listen sock: {host} {port}")
        emit("listening", role=self.role, host=host, port=port)
        for i in range(int(self.opts.get("conns", 1))):
            conn, _ = lsock.accept()
            self.sockopts(conn)
            if i == 0:
                self.log("Accepted")
                emit("up", role=self.role)
            try:
                SERVER_FUNCS[self.opts.get("func", "read_char")](self, conn)
            finally:
                conn.close()
        lsock.close()

    def read_server(self, conn: socket.socket) -> None:
        with conn.makefile("rb") as r:
            self.read_char(r, self.opts.get("max"))

    def write_server(self, conn: socket.socket) -> None:
        self.write_body(conn, self.opts.get("len", 251))

    def http_server(self, conn: socket.socket) -> None:
        r = conn.makefile("rb")
        try:
            while True:
                line = self.read_line(r)
                if line is None:
                    return
                m = re.fullmatch(r"(\w+) (.*) HTTP/(1\.[01])", line)
                if not m:
                    raise self.die("http request not ok")
                method, url, vers = m.groups()
                if method not in ("GET", "HEAD", "PUT"):
                    raise self.die(f"unknown method: {method}")
                length = url_length(url)
                is_chunked = False
                cookie = ""
                while True:
                    hline = self.read_line(r)
                    if hline is None:
                        raise self.die("missing http header end")
                    if not hline:
                        break
                    cl = re.fullmatch(r"Content-Length: (.*)", hline)
                    if method == "PUT" and cl and cl.group(1) != str(length):
                        raise self.die(f"bad content length {cl.group(1)}")
                    if hline == "Transfer-Encoding: chunked":
                        is_chunked = True
                    ck = re.fullmatch(r"Cookie: (.*)", hline)
                    if ck:
                        cookie = ck.group(1)
                if method == "PUT":
                    if is_chunked:
                        self.read_chunked(r)
                    else:
                        self.read_char(r, length if isinstance(length, int) else sum(length))
                head = response_head(method, vers, length, cookie)
                for hl in head.decode().split("\r\n")[:-1]:
                    self.log(f">>> {hl}")
                self.send(conn, head)
                if method == "GET":
                    if isinstance(length, list):
                        self.write_chunked(conn, length)
                    else:
                        self.write_body(conn, length)
                if vers != "1.1":
                    return
        finally:
            r.close()


CLIENT_FUNCS = {
    "http_client": Peer.http_client,
    "write_char": Peer.write_client,
    "read_char": Peer.read_client,
    "script": Peer.script_client,
    "slow_consumer": Peer.slow_consumer,
}
SERVER_FUNCS = {
    "http_server": Peer.http_server,
    "read_char": Peer.read_server,
    "write_char": Peer.write_server,
}


def main() -> int:
    leash.end_with_parent()
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
    spec = json.loads(sys.stdin.read())
    peer = Peer(spec)
    try:
        if peer.role == "server":
            peer.serve()
        else:
            CLIENT_FUNCS[peer.opts.get("func", "write_char")](peer)
    except (PeerError, OSError) as e:
        text = str(e) if isinstance(e, PeerError) else f"{peer.role.capitalize()} {os.strerror(e.errno or errno.EIO)}"
        if peer.opts.get("errignore"):
            peer.log("Error ignored")
            peer.log(text)
            return 0
        peer.log(text)
        return 255
    peer.log("Shutdown")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)
