"""The step vocabulary that roles execute, after upstream's funcs.pl.

A role's steps run in order inside its agent process. Log lines keep
upstream's texts (LEN, MD5, LENGTHS, ERROR IN/OUT, Timeout, Big, Max, End,
Spliced, Read, SPLICELEN) so that checks read like check_logs; errno values
are logged by symbol.

Stdlib only: this module travels to the remote host with the agent.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import select
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .ledger import ledger
from .ledger import report as report_source
from .splice.api import Splicer, errno_name, host_abi, pack_splice

CYCLE = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\n"


class RoleError(Exception):
    """A role gives up: upstream's die(). The text goes to the log."""


def stream_bytes(length: int, start: int = 0) -> bytes:
    """Upstream's generator: length-1 characters of the 63-cycle, then a newline."""
    if length <= 0:
        return b""
    body = bytes(CYCLE[(start + i) % len(CYCLE)] for i in range(length - 1))
    return body + b"\n"


_BLOCK = CYCLE * 1040  # 65520 bytes: whole cycles, so every block starts at '0'


def stream_chunks(length: int) -> Iterator[bytes]:
    """stream_bytes(length) in blocks of at most 64 KiB, for streams too long to hold."""
    if length <= 0:
        return
    left = length - 1
    while left > 0:
        block = _BLOCK[: min(left, len(_BLOCK))]
        left -= len(block)
        yield block if left else block + b"\n"
    if length == 1:
        yield b"\n"


def datagram_payloads(lengths: list[int]) -> list[bytes]:
    """write_datagram's payloads: the cycle continues across datagrams."""
    out, pos = [], 0
    for n in lengths:
        if n == 0:
            out.append(b"")
            continue
        body = bytes(CYCLE[(pos + i) % len(CYCLE)] for i in range(n - 1))
        pos += n - 1
        out.append(body + b"\n")
    return out


@dataclass
class Ctx:
    """What a role's steps work on: its sockets (upstream's STDIN/STDOUT), options and log."""

    role: str
    opts: dict[str, Any]
    mode: str  # "copy" or "splice"
    protocol: str
    splicer: Splicer
    scale: float
    log: Callable[[str], None]
    stdin: socket.socket | None = None
    stdout: socket.socket | None = None
    errignore: bool = False
    vars: dict[str, Any] = field(default_factory=dict)

    def opt(self, name: str, default: Any = None) -> Any:
        value = self.opts.get(name)
        return default if value is None else value

    def seconds(self, value: float) -> float:
        """A scenario duration under the time scale."""
        return value * self.scale

    def sleep(self, value: float) -> None:
        time.sleep(self.seconds(value))

    @property
    def src(self) -> socket.socket:
        if self.stdin is None:
            raise RoleError(f"{self.role} has no input socket")
        return self.stdin

    @property
    def dst(self) -> socket.socket:
        if self.stdout is None:
            raise RoleError(f"{self.role} has no output socket")
        return self.stdout

    def die(self, text: str) -> RoleError:
        return RoleError(f"{self.role.capitalize()} {text}")

    def log_errors(self) -> None:
        self.log(f"ERROR IN: {so_error(self, self.stdin)}")
        self.log(f"ERROR OUT: {so_error(self, self.stdout)}")


def so_error(ctx: Ctx, sock: socket.socket | None) -> str:
    """SO_ERROR by name; empty when the socket is gone (upstream prints nothing then)."""
    if sock is None or sock.fileno() < 0:
        return ""
    try:
        code = ctx.splicer.error(sock)
    except OSError:
        return ""
    return errno_name(code or ctx.vars.get("consumed", {}).pop(sock.fileno(), 0))


def send_error(ctx: Ctx, sock: socket.socket, e: OSError) -> OSError:
    """A failed send as BSD reports it (README "Emulation fidelity", host sockets).

    Linux hands a pending reset to the next send as ECONNRESET and clears it;
    BSD's sosend sees the dead connection first, fails with EPIPE and leaves
    so_error set. Keep the reset as the socket's pending error and say EPIPE.
    """
    if e.errno in (errno.ECONNRESET, errno.EPIPE) and _reset_on_linux(sock):
        ctx.vars.setdefault("consumed", {})[sock.fileno()] = errno.ECONNRESET
        return OSError(errno.EPIPE, os.strerror(errno.EPIPE))
    return e


def _reset_on_linux(sock: socket.socket) -> bool:
    """Linux only: the connection was dropped by a reset (TCP state CLOSE).

    Linux also says EPIPE, not ECONNRESET, for a reset that comes after the
    peer's FIN; BSD's so_error is ECONNRESET either way.
    """
    tcp_info = getattr(socket, "TCP_INFO", None)
    if tcp_info is None or os.uname().sysname != "Linux" or sock.type != socket.SOCK_STREAM:
        return False
    try:
        return sock.getsockopt(socket.IPPROTO_TCP, tcp_info, 8)[0] == 7  # TCP_CLOSE
    except OSError:
        return False


def strerror(e: OSError) -> str:
    return os.strerror(e.errno) if e.errno else str(e)


STEPS: dict[str, Callable[..., None]] = {}


def step(fn: Callable[..., None]) -> Callable[..., None]:
    STEPS[fn.__name__] = fn
    return fn


# ---- client side


def _send_all(sock: socket.socket, data: bytes) -> int:
    """sendall() that counts: the bytes the kernel took are in `.sent` of an OSError it raises."""
    view = memoryview(data)
    sent = 0
    try:
        while sent < len(data):
            sent += sock.send(view[sent:])
    except OSError as e:
        e.sent = sent  # type: ignore[attr-defined]
        raise
    return sent


@step
def write_stream(ctx: Ctx, length: int | None = None) -> None:
    n = length if length is not None else ctx.opt("len", 251)
    pause = ctx.opt("sleep")
    md5 = hashlib.md5()
    sent = 0  # what the kernel took, for the conservation check (SENT)
    try:
        for chunk in stream_chunks(n):
            md5.update(chunk)
            if pause:
                for i in range(len(chunk)):
                    sent += _send_all(ctx.dst, chunk[i : i + 1])
                    ctx.sleep(pause)
            else:
                sent += _send_all(ctx.dst, chunk)
    except OSError as e:
        sent += getattr(e, "sent", 0)
        raise ctx.die(f"print failed: {strerror(send_error(ctx, ctx.dst, e))}") from e
    finally:
        if ctx.vars.get("conserve"):
            ctx.log(f"SENT: {sent} of {n}")
    ctx.log(f"LEN: {n}")
    ctx.log(f"MD5: {md5.hexdigest()}")


@step
def write_oob(ctx: Ctx, length: int | None = None) -> None:
    """The stream in pieces; every '9' is sent as the urgent byte of its piece."""
    n = length if length is not None else ctx.opt("len", 251)
    data = stream_bytes(n)
    md5 = hashlib.md5()
    piece = b""
    try:
        for i in range(len(data)):
            c = data[i : i + 1]
            piece += c
            if c == b"9":
                md5.update(b"[9]")
                ctx.dst.send(piece, socket.MSG_OOB)
                ctx.sleep(0.1 / max(ctx.scale, 1e-9) * ctx.scale)  # upstream's fixed 0.1 s gap
                piece = b""
            else:
                md5.update(c)
                if c == b"\n":
                    ctx.dst.sendall(piece)
                    piece = b""
        if piece:
            ctx.dst.sendall(piece)
    except OSError as e:
        raise ctx.die(f"send failed: {strerror(send_error(ctx, ctx.dst, e))}") from e
    ctx.log(f"LEN: {n}")
    ctx.log(f"MD5: {md5.hexdigest()}")


@step
def write_datagram(ctx: Ctx, length: int | None = None) -> None:
    lengths = list(ctx.opt("lengths") or [length if length is not None else ctx.opt("len", 251)])
    pause = ctx.opt("sleep")
    total = 0
    for num, payload in enumerate(datagram_payloads(lengths)):
        try:
            written = ctx.dst.send(payload)
        except OSError as e:
            raise ctx.die(f"syswrite number {num} failed: {strerror(e)}") from e
        if written != len(payload):
            raise ctx.die(f"syswrite length {len(payload)} did write {written}")
        total += written
        if pause:
            ctx.sleep(pause)
    ctx.log(f"LEN: {total}")
    ctx.log("LENGTHS: " + " ".join(str(n) for n in lengths))
    ctx.log(f"MD5: {hashlib.md5(b''.join(datagram_payloads(lengths))).hexdigest()}")


@step
def solingerout(ctx: Ctx) -> None:
    ctx.dst.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@step
def solingerin(ctx: Ctx) -> None:
    ctx.src.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


# ---- server side


@step
def read_stream(ctx: Ctx) -> None:
    limit = ctx.opt("max")
    md5 = hashlib.md5()
    total = 0
    while True:
        try:
            buf = ctx.src.recv(1 << 16)
        except OSError as e:
            raise ctx.die(f"read failed: {strerror(e)}") from e
        if not buf:
            break
        if limit and total + len(buf) >= limit:
            # upstream reads lines; it stops at the first line that reaches max
            cut = buf.find(b"\n", limit - total - 1)
            buf = buf if cut < 0 else buf[: cut + 1]
            md5.update(buf)
            total += len(buf)
            ctx.log("Max")
            break
        md5.update(buf)
        total += len(buf)
    ctx.log(f"LEN: {total}")
    ctx.log(f"MD5: {md5.hexdigest()}")


@step
def read_oob(ctx: Ctx) -> None:
    size = ctx.opt("size", 4091)
    inline = bool(ctx.opt("oobinline"))
    md5 = hashlib.md5()
    total = 0
    while True:
        select.select([ctx.src], [], [] if inline else [ctx.src])
        if sockatmark(ctx.src):
            if inline:
                buf = ctx.src.recv(1)
                md5.update(b"[" + buf + b"]")
                total += len(buf)
            else:
                try:
                    buf = ctx.src.recv(1, socket.MSG_OOB)
                    if buf:
                        ctx.log(f"OOB: {buf.decode(errors='replace')}")
                except OSError as e:
                    if e.errno != errno.EINVAL:
                        raise ctx.die(f"recv OOB failed: {strerror(e)}") from e
        buf = ctx.src.recv(size)
        if not buf:
            break
        md5.update(buf)
        total += len(buf)
    ctx.log(f"LEN: {total}")
    ctx.log(f"MD5: {md5.hexdigest()}")


@step
def read_datagram(ctx: Ctx) -> None:
    limit = ctx.opt("max")
    idle = ctx.opt("idle")
    size = ctx.opt("size", 1 << 16)
    md5 = hashlib.md5()
    total = 0
    lengths: list[int] = []
    while True:
        if idle and not select.select([ctx.src], [], [], ctx.seconds(idle))[0]:
            ctx.log("Timeout")
            break
        buf = ctx.src.recv(size)
        total += len(buf)
        lengths.append(len(buf))
        md5.update(buf)
        if limit and total >= limit:
            break
    ctx.log(f"LEN: {total}")
    ctx.log("LENGTHS: " + " ".join(str(n) for n in lengths))
    ctx.log(f"MD5: {md5.hexdigest()}")


# ---- relay side


def sockatmark(sock: socket.socket) -> bool:
    import fcntl
    import termios

    req = getattr(termios, "SIOCATMARK", 0x8905 if os.uname().sysname == "Linux" else 0x40047307)
    fd = sock.fileno()  # once: a SIGALRM handler may close the socket between two looks
    if fd < 0:  # closed under us (args-relay-close-in): what ioctl(2) would say
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))
    return bool(struct.unpack("i", fcntl.ioctl(fd, req, b"\0\0\0\0"))[0])


@step
def relay(ctx: Ctx) -> None:
    if ctx.mode == "copy":
        relay_copy(ctx)
    elif ctx.mode == "splice":
        if ctx.protocol == "tcp":
            relay_splice_stream(ctx)
        else:
            relay_splice_datagram(ctx)
    else:
        raise ctx.die(f"unknown forward name: {ctx.mode}")
    ctx.log_errors()


@step
def relay_copy(ctx: Ctx) -> None:
    if ctx.protocol == "tcp":
        relay_copy_stream(ctx)
    else:
        relay_copy_datagram(ctx)


def _wait_writable(sock: socket.socket) -> None:
    select.select([], [sock], [])


def relay_copy_stream(ctx: Ctx) -> None:
    limit = ctx.opt("max", 0)
    idle = ctx.opt("idle")
    size = ctx.opt("size", 8093)
    inline = bool(ctx.opt("oobinline"))
    sp = ctx.splicer
    total = 0
    while True:
        ready = sp.wait_readable(ctx.src, ctx.seconds(idle) if idle else None, exceptional=not inline)
        if idle and not ready:
            ctx.log("Timeout")
            break
        if sockatmark(ctx.src):
            if inline:
                buf = sp.recv(ctx.src, 1)
                total += len(buf)
                ctx.dst.send(buf, socket.MSG_OOB)
                ledger(ctx).copied(len(buf))
            else:
                try:
                    buf = sp.recv(ctx.src, 1, socket.MSG_OOB)
                    if buf:
                        ctx.log(f"OOB: {buf.decode(errors='replace')}")
                except OSError as e:
                    if e.errno != errno.EINVAL:
                        raise ctx.die(f"recv OOB failed: {strerror(e)}") from e
        if ctx.opt("nonblocking"):
            sp.wait_readable(ctx.src, None)
        try:
            buf = sp.recv(ctx.src, min(limit, size) if limit else size)
        except BlockingIOError:
            continue
        except OSError as e:
            raise ctx.die(f"sysread at {total} failed: {strerror(e)}") from e
        if not buf:
            ctx.log("End")
            break
        dropped = b""
        if limit and total + len(buf) > limit:
            buf, dropped = buf[: limit - total], buf[limit - total :]  # read past max: the relay drops it
        off = 0
        while off < len(buf):
            if ctx.opt("nonblocking"):
                _wait_writable(ctx.dst)
            try:
                written = ctx.dst.send(buf[off:])
            except InterruptedError:
                continue
            except BlockingIOError:
                continue
            except OSError as e:
                if e.errno == errno.ETIMEDOUT:
                    continue
                ledger(ctx).read(buf[off:])  # read, never written
                raise ctx.die(f"syswrite at {total} failed: {strerror(send_error(ctx, ctx.dst, e))}") from e
            off += written
            total += written
            ledger(ctx).copied(written)
        if dropped:
            ledger(ctx).read(dropped)
        if limit and total == limit:
            ctx.log("Big")
            ctx.log("Max")
            break
    ctx.log(f"LEN: {total}")


def relay_copy_datagram(ctx: Ctx) -> None:
    limit = ctx.opt("max", 0)
    idle = ctx.opt("idle")
    size = ctx.opt("size", 1 << 16)
    sp = ctx.splicer
    total = 0
    num = 0
    while True:
        if idle:
            if not sp.wait_readable(ctx.src, ctx.seconds(idle)):
                ctx.log("Timeout")
                break
        elif ctx.opt("nonblocking"):
            sp.wait_readable(ctx.src, None)
        try:
            buf = sp.recv(ctx.src, size)
        except OSError as e:
            raise ctx.die(f"sysread number {num} failed: {strerror(e)}") from e
        if limit and total + len(buf) > limit:
            ledger(ctx).read(buf)  # the datagram that does not fit: read, not forwarded
            ctx.log("Max")
            break
        if ctx.opt("nonblocking"):
            _wait_writable(ctx.dst)
        try:
            written = sp.send(ctx.dst, buf)
        except OSError as e:
            ledger(ctx).read(buf)
            raise ctx.die(f"syswrite number {num} failed: {strerror(e)}") from e
        if written != len(buf):
            raise ctx.die(f"syswrite read {len(buf)} did write {written}")
        ledger(ctx).copied(written)
        total += written
        num += 1
        if limit and total == limit:
            ctx.log("Big")
            ctx.log("Max")
            break
    ctx.log(f"LEN: {total}")


def _splice_error(ctx: Ctx) -> int:
    err = ctx.splicer.error(ctx.src)
    ledger(ctx).ended(err)
    if err and err not in (errno.ETIMEDOUT, errno.EFBIG):
        raise ctx.die(f"splice failed: {os.strerror(err)}")
    return err


def _wait_dissolved(ctx: Ctx) -> None:
    sp = ctx.splicer
    if ctx.opt("readblocking"):
        while True:
            try:
                buf = sp.recv(ctx.src, 1 << 16)
            except BlockingIOError:
                if not ctx.opt("nonblocking"):
                    raise
                # upstream busy-loops here; poll the kernel's view instead of spinning
                sp.wait_readable(ctx.src, 0.01)
                continue
            except OSError as e:
                raise ctx.die(f"read blocking failed: {strerror(e)}") from e
            if buf:
                ledger(ctx).read(buf)
                raise ctx.die(f"read blocking has data: {len(buf)}")
            break
        ctx.log("Read")
    else:
        sp.wait_readable(ctx.src, None)


def relay_splice_stream(ctx: Ctx) -> None:
    limit = ctx.opt("max", 0)
    idle = ctx.opt("idle", 0)
    sp = ctx.splicer
    total = 0
    err = 0
    for _round in range(2):  # one more round after a short splice
        splicemax = limit - total if limit else 0
        try:
            sp.splice(ctx.src, ctx.dst, splicemax, ctx.seconds(idle))
        except OSError as e:
            raise ctx.die(f"splice stdin to stdout failed: {strerror(e)}") from e
        ledger(ctx).splicing()
        ctx.log("Spliced")
        _wait_dissolved(ctx)
        err = _splice_error(ctx)
        splicelen = sp.length(ctx.src)
        ledger(ctx).spliced(splicelen)
        ctx.log(f"SPLICELEN: {splicelen}")
        if limit and splicelen > splicemax:
            raise ctx.die(f"splice len {splicelen} greater than max {splicemax}")
        total += splicelen
        if not (limit and limit > total):
            break
    _splice_check(ctx, idle, limit, total, err)
    ctx.log(f"LEN: {total}")


def relay_splice_datagram(ctx: Ctx) -> None:
    limit = ctx.opt("max", 0)
    idle = ctx.opt("idle", 0)
    sp = ctx.splicer
    try:
        sp.splice(ctx.src, ctx.dst, limit, ctx.seconds(idle))
    except OSError as e:
        raise ctx.die(f"splice stdin to stdout failed: {strerror(e)}") from e
    ledger(ctx).splicing()
    ctx.log("Spliced")
    sp.wait_readable(ctx.src, None)
    err = _splice_error(ctx)
    splicelen = sp.length(ctx.src)
    ledger(ctx).spliced(splicelen)
    ctx.log(f"SPLICELEN: {splicelen}")
    if limit and splicelen > limit:
        raise ctx.die(f"splice len {splicelen} greater than max {limit}")
    total = splicelen
    if limit and limit > total:
        try:
            head = sp.recv(ctx.src, limit - total)
        except OSError as e:
            raise ctx.die(f"sysread stdin max failed: {strerror(e)}") from e
        ledger(ctx).read(head)  # the head of the next datagram, read by the relay itself
        total += len(head)
    _splice_check(ctx, idle, limit, total, err)
    ctx.log(f"LEN: {splicelen}")


def _splice_check(ctx: Ctx, idle: float, limit: int, total: int, err: int) -> None:
    if idle and err == errno.ETIMEDOUT:
        ctx.log("Timeout")
    if limit and err == errno.EFBIG:
        ctx.log("Big")
    if limit and limit == total:
        ctx.log("Max")
    elif limit and limit < total:
        raise ctx.die(f"max {limit} less than len {total}")
    elif limit and limit > total and err == errno.EFBIG:
        raise ctx.die(f"max {limit} greater than len {total}")
    elif not err:
        try:
            buf = ctx.splicer.recv(ctx.src, 1 << 16)
        except OSError as e:
            raise ctx.die(f"sysread stdin failed: {strerror(e)}") from e
        if buf:
            ledger(ctx).read(buf)
            raise ctx.die(f"sysread stdin has data: {len(buf)}")
        ctx.log("End")


@step
def ioflip(ctx: Ctx) -> None:
    ctx.stdin, ctx.stdout = ctx.stdout, ctx.stdin


@step
def errignore(ctx: Ctx) -> None:
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    ctx.errignore = True


@step
def shutin(ctx: Ctx) -> None:
    ctx.splicer.shutdown(ctx.src, socket.SHUT_RD)
    ledger(ctx).flushed()


@step
def shutout(ctx: Ctx) -> None:
    ctx.splicer.shutdown(ctx.dst, socket.SHUT_WR)


@step
def sleep(ctx: Ctx, seconds: float) -> None:
    ctx.sleep(seconds)


@step
def alarm(ctx: Ctx, seconds: float) -> None:
    """The role's own alarm(2), not the framework's: SIGALRM kills it and fails the test."""
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.setitimer(signal.ITIMER_REAL, ctx.seconds(seconds))


@step
def splice_reverse(ctx: Ctx, idle: float) -> None:
    """Splice the drain back into the source with an idle timeout (args-idle-reverse)."""
    try:
        ctx.splicer.splice(ctx.dst, ctx.src, 0, ctx.seconds(idle))
    except OSError as e:
        raise ctx.die(f"splice stdout to stdin failed: {strerror(e)}") from e
    ctx.log("Spliced reverse")


def _fork(ctx: Ctx, body: Callable[[], None]) -> int:
    """A child beside the relay, as upstream's fork() in a relay func; it never returns."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.signal(signal.SIGPIPE, signal.SIG_IGN)
            if ctx.opt("alarm"):
                signal.setitimer(signal.ITIMER_REAL, ctx.seconds(ctx.opt("alarm")))
            body()
        except BaseException as e:
            code = 1
            with contextlib.suppress(OSError):
                os.write(2, f"{ctx.role} child {os.getpid()}: {type(e).__name__}: {e}\n".encode())
        os._exit(code)
    ctx.vars.setdefault("children", []).append(pid)
    return pid


@step
def fork_reader(ctx: Ctx) -> None:
    """A child reads the source in 10-byte chunks until EOF (args-relay-read-forked).

    Through the splicer, as the kernel sees every read: while the splice lasts the
    source is neither readable nor read (soo_poll, soreceive).
    """
    src = ctx.src

    def body() -> None:
        while True:
            ctx.splicer.wait_readable(src, None)
            try:
                if not ctx.splicer.recv(src, 10):
                    return
            except BlockingIOError:
                continue

    _fork(ctx, body)


@step
def fork_writer(ctx: Ctx) -> None:
    """A child writes a line to the drain every 10 ms (args-relay-write-forked)."""
    fd = ctx.dst.fileno()

    def body() -> None:
        while True:
            with contextlib.suppress(BlockingIOError):
                os.write(fd, b"\n foo bar\n")
            time.sleep(ctx.seconds(0.01))

    _fork(ctx, body)


@step
def kill_children(ctx: Ctx) -> None:
    for pid in ctx.vars.pop("children", []):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


@step
def close_in_alarm(ctx: Ctx, seconds: float) -> None:
    """A SIGALRM handler closes the source after `seconds` (args-relay-close-in).

    The close goes through the splicer: closing a spliced socket unsplices it.
    """

    def handler(_signum: int, _frame: object) -> None:
        ctx.splicer.close(ctx.src)

    signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, ctx.seconds(seconds))


@step
def unsplice_forked(ctx: Ctx) -> None:
    """args-unsplice-forked: a child unsplices the source from its own process after 2 s."""

    def body() -> None:
        ctx.sleep(2)
        if ctx.mode == "splice":
            try:
                ctx.splicer.unsplice(ctx.src)
            except OSError as e:
                raise ctx.die(f"unsplice stdin failed: {strerror(e)}") from e

    pid = _fork(ctx, body)
    ctx.sleep(1)
    failure = ""
    try:
        relay(ctx)
    except RoleError as e:
        failure = str(e)
    if ctx.mode == "splice" and not failure.startswith("Relay sysread stdin has data:"):
        raise ctx.die(f"no data after unsplice: {failure or 'relay ended without error'}")
    ctx.sleep(2)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    ctx.vars["children"].remove(pid)
    if status != 0:
        raise ctx.die(f"unsplice child status: {status}")


def close_like_bsd(ctx: Ctx) -> None:
    """Close a role's TCP sockets at its end the way BSD's soclose does.

    BSD discards unread data and sends FIN; Linux sends RST when data is left
    unread, which would cut the peer's last reads short (an echo child would see
    ECONNRESET instead of EOF). So discard what is unread, then close. A socket
    with linger 0 still resets, as on BSD. Data arriving afterwards is answered
    with RST by either kernel.
    """
    if ctx.role == "relay" and ctx.vars.get("conserve"):
        report_source(ctx)  # what is left on the source, before the close discards it
    for sock in {id(s): s for s in (ctx.stdin, ctx.stdout) if s is not None}.values():
        if sock.fileno() < 0 or sock.type != socket.SOCK_STREAM:
            continue
        with contextlib.suppress(OSError):
            ctx.splicer.unsplice(sock)
        if _reset_on_linux(sock) or _linger_zero(sock):
            continue  # the kernel closes it as it is
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)  # FIN first, so that a later reset cannot hide EOF
        with contextlib.suppress(OSError):  # what is queued now; later data gets a reset
            sock.recv(max(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF), 1 << 16),
                      socket.MSG_DONTWAIT)
        with contextlib.suppress(OSError):
            ctx.splicer.close(sock)


def _linger_zero(sock: socket.socket) -> bool:
    try:
        onoff, secs = struct.unpack("ii", sock.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8))
    except OSError:
        return False
    return bool(onoff) and secs == 0


def run_steps(ctx: Ctx, steps: list[Any]) -> None:
    for item in steps:
        name, args = (item, []) if isinstance(item, str) else (item[0], list(item[1:]))
        fn = STEPS.get(name)
        if fn is None:
            raise RoleError(f"unknown step {name!r}")
        fn(ctx, *args)


# ---- API scripts (upstream error/): socket operations on one host


API_OPS: dict[str, Callable[..., None]] = {}


def api_op(fn: Callable[..., None]) -> Callable[..., None]:
    API_OPS[fn.__name__] = fn
    return fn


@dataclass
class ApiState:
    splicer: Splicer
    scale: float
    socks: dict[str, socket.socket] = field(default_factory=dict)
    vars: dict[str, Any] = field(default_factory=dict)
    fds: dict[str, int] = field(default_factory=dict)  # open descriptors that are no sockets (nonsocket)
    closed: dict[str, int] = field(default_factory=dict)  # descriptor numbers closed on purpose (closed_fd)

    def fd(self, ref: str | int) -> int:
        if isinstance(ref, int):
            return ref
        if ref in self.socks:
            return self.socks[ref].fileno()
        return self.fds[ref] if ref in self.fds else self.closed[ref]

    def close_all(self) -> None:
        for s in self.socks.values():
            with contextlib.suppress(OSError):
                self.splicer.close(s)
        for fd in self.fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)


LOOPBACK = "127.0.0.1"


@api_op
def tcp(st: ApiState, name: str) -> None:
    st.socks[name] = socket.socket(socket.AF_INET, socket.SOCK_STREAM)


@api_op
def udp(st: ApiState, name: str) -> None:
    st.socks[name] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)


@api_op
def unix(st: ApiState, name: str) -> None:
    st.socks[name] = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)


@api_op
def tcp_listen(st: ApiState, name: str, backlog: int = 5) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((LOOPBACK, 0))
    s.listen(backlog)
    st.socks[name] = s


@api_op
def tcp_connect(st: ApiState, name: str, listener: str) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(st.socks[listener].getsockname())
    s.settimeout(None)
    st.socks[name] = s


@api_op
def accept(st: ApiState, name: str, listener: str) -> None:
    lsock = st.socks[listener]
    lsock.settimeout(10)
    s, _ = lsock.accept()
    s.settimeout(None)
    st.socks[name] = s


@api_op
def udp_bind(st: ApiState, name: str) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((LOOPBACK, 0))
    st.socks[name] = s


@api_op
def udp_connect(st: ApiState, name: str, peer: str) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(st.socks[peer].getsockname())
    st.socks[name] = s


@api_op
def nofile(st: ApiState, count: int) -> None:
    """Raise the soft descriptor limit to at least `count` (upstream's `ulimit -n`)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < count:
        if hard != resource.RLIM_INFINITY and hard < count:
            raise RoleError(f"descriptor limit: need {count}, hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (count, hard))


@api_op
def pair(st: ApiState, proto: str, inet: int, accept: str, connect: str) -> None:
    """A connected pair on loopback (chain.pl/loop.pl): `connect` to a listener, `accept` its end.

    TCP: the accepted socket, the listener closed. UDP: the bound, unconnected listening
    socket itself; `connect` is connected to it.
    """
    fam, host = (socket.AF_INET6, "::1") if inet == 6 else (socket.AF_INET, LOOPBACK)
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    ls = socket.socket(fam, kind)
    ls.bind((host, 0))
    if proto == "tcp":
        ls.listen(1)
    cs = socket.socket(fam, kind)
    cs.settimeout(10)
    cs.connect(ls.getsockname()[:2])
    cs.settimeout(None)
    if proto == "tcp":
        ls.settimeout(10)
        with ls:
            acc, _ = ls.accept()
        acc.settimeout(None)
        st.socks[accept] = acc
    else:
        st.socks[accept] = ls
    st.socks[connect] = cs


@api_op
def connect_back(st: ApiState, name: str, peer: str) -> None:
    """Connect UDP socket `name` to the address `peer` is bound to (loop.pl, bcast.pl)."""
    st.socks[name].connect(st.socks[peer].getsockname())


@api_op
def bcast_pair(st: ApiState, accept: str, connect: str, address: str = "255.255.255.255") -> None:
    """bcast.pl: `accept` bound to a broadcast address, `connect` connected to it (both with
    SO_BROADCAST), then `accept` connected back to `connect`'s address."""
    ls = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    ls.bind((address, 0))
    cs = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    cs.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    cs.connect(ls.getsockname())
    ls.connect(cs.getsockname())
    st.socks[accept] = ls
    st.socks[connect] = cs


@api_op
def splice(st: ApiState, source: str, drain: str | int, max: int | None = None,
           idle: float | None = None) -> None:
    """setsplice(): int form without max and idle, the struct with them (like BSD::Socket::Splice)."""
    if max is None and idle is None and st.splicer.personality.int_form:
        st.splicer.setopt(st.socks[source], st.fd(drain))
    else:
        st.splicer.splice(st.socks[source], st.fd(drain), max or 0, (idle or 0.0) * st.scale)


@api_op
def setopt(st: ApiState, source: str, form: str, drain: str | int = -1, max: int = 0,
           tv: list[int] | None = None, optlen: int = 0) -> None:
    """The raw option value: 'int', 'short' (2 bytes), 'null', or 'struct' (tv = raw timeval).

    `optlen` is the length of a NULL value; a struct is cut or zero-padded to it (16: the 4.9 {fd, max}).
    """
    sock = st.socks[source]
    fd = st.fd(drain)
    if form == "int":
        st.splicer.setopt(sock, struct.pack("=i", fd))
    elif form == "short":
        st.splicer.setopt(sock, struct.pack("=h", fd))
    elif form == "null":
        st.splicer.setopt(sock, None, optlen)
    elif form == "struct":
        sec, usec = tv or (0, 0)
        value = pack_splice(fd, max, abi=host_abi(), tv=(sec, usec))
        if optlen:
            value = value[:optlen].ljust(optlen, b"\0")
        st.splicer.setopt(sock, value)
    else:
        raise RoleError(f"unknown option form {form!r}")


@api_op
def unsplice(st: ApiState, source: str) -> None:
    st.splicer.unsplice(st.socks[source])


@api_op
def send(st: ApiState, name: str, text: str) -> None:
    st.splicer.send(st.socks[name], text.encode())


@api_op
def recv(st: ApiState, name: str, expect: str | None = None) -> None:
    """A blocking read (10 s deadline); with `expect`, the data must be exactly that."""
    sock = st.socks[name]
    if not st.splicer.wait_readable(sock, 10.0):
        raise RoleError(f"recv {name}: nothing readable within 10 s")
    data = st.splicer.recv(sock, 1 << 16, socket.MSG_DONTWAIT)
    if expect is not None and data != expect.encode():
        raise RoleError(f"recv {name}: got {data!r}, expected {expect.encode()!r}")


@api_op
def length(st: ApiState, name: str, expect: int) -> None:
    got = st.splicer.length(st.socks[name])
    if got != expect:
        raise RoleError(f"splice length of {name}: got {got}, expected {expect}")


@api_op
def error(st: ApiState, name: str, expect: str | list[str]) -> None:
    """SO_ERROR (get and clear) must be `expect`, or one of a list of names."""
    got = errno_name(st.splicer.error(st.socks[name]))
    allowed = [expect] if isinstance(expect, str) else expect
    if got not in allowed:
        raise RoleError(f"SO_ERROR of {name}: got {got}, expected {' or '.join(allowed)}")


@api_op
def recv_exact(st: ApiState, name: str, size: int, expect: str | None = None) -> None:
    """Read exactly `size` bytes within 10 s (a plain socket: the peer side of a splice)."""
    sock = st.socks[name]
    data = b""
    deadline = time.monotonic() + 10.0
    while len(data) < size:
        left = deadline - time.monotonic()
        if left <= 0 or not st.splicer.wait_readable(sock, left):
            raise RoleError(f"recv_exact {name}: got {len(data)} of {size} bytes within 10 s")
        chunk = st.splicer.recv(sock, size - len(data), socket.MSG_DONTWAIT)
        if not chunk:
            raise RoleError(f"recv_exact {name}: EOF after {len(data)} of {size} bytes")
        data += chunk
    if expect is not None and data != expect.encode():
        raise RoleError(f"recv_exact {name}: got {data!r}, expected {expect.encode()!r}")


@api_op
def readable(st: ApiState, name: str, expect: bool, within: float = 0.0) -> None:
    """select() readiness as the splicer reports it, within a scaled time."""
    got = st.splicer.wait_readable(st.socks[name], within * st.scale)
    if got != expect:
        raise RoleError(f"{name}: readable is {got}, expected {expect}")


@api_op
def queued(st: ApiState, name: str, size: int) -> None:
    """Wait (10 s deadline) until `size` bytes are in the socket's receive buffer (FIONREAD)."""
    import fcntl
    import termios

    sock = st.socks[name]
    deadline = time.monotonic() + 10.0
    got = 0
    while time.monotonic() < deadline:
        got = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]
        if got >= size:
            return
        select.select([sock], [], [], 0.01)
    raise RoleError(f"{name}: {got} bytes queued after 10 s, expected {size}")


@api_op
def pause(st: ApiState, seconds: float) -> None:
    """A scenario pause, under the time scale."""
    time.sleep(seconds * st.scale)


@api_op
def shutdown(st: ApiState, name: str, how: str) -> None:
    st.splicer.shutdown(st.socks[name], {"rd": socket.SHUT_RD, "wr": socket.SHUT_WR}[how])


@api_op
def close(st: ApiState, name: str) -> None:
    st.splicer.close(st.socks.pop(name))


@api_op
def nonblocking(st: ApiState, name: str) -> None:
    st.socks[name].setblocking(False)


@api_op
def sndbuf(st: ApiState, name: str, size: int) -> None:
    st.socks[name].setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)


@api_op
def recv_fails(st: ApiState, name: str, expect: str) -> None:
    """A non-blocking read on the socket must fail with errno `expect`."""
    _must_fail(f"recv {name}", lambda: st.splicer.recv(st.socks[name], 1 << 16, socket.MSG_DONTWAIT), expect)


def _must_fail(what: str, call: Callable[[], Any], expect: str) -> None:
    """`call` must fail with errno `expect` ('timeout': Python's TimeoutError)."""
    try:
        data = call()
    except TimeoutError as e:
        if expect != "timeout":
            raise RoleError(f"{what}: timed out, expected {expect}") from e
        return
    except OSError as e:
        if errno_name(e.errno) != expect:
            raise RoleError(f"{what}: failed with {errno_name(e.errno)}, expected {expect}") from e
        return
    got = f"returned {len(data)} bytes" if isinstance(data, bytes) else "succeeded"
    raise RoleError(f"{what}: {got}, expected {expect}")


@api_op
def recv_datagram(st: ApiState, name: str, size: int) -> None:
    """The next datagram (10 s deadline) must be exactly `size` bytes long."""
    sock = st.socks[name]
    if not st.splicer.wait_readable(sock, 10.0):
        raise RoleError(f"recv_datagram {name}: nothing readable within 10 s")
    data = st.splicer.recv(sock, 1 << 16, socket.MSG_DONTWAIT)
    if len(data) != size:
        raise RoleError(f"recv_datagram {name}: got {len(data)} bytes, expected {size}")


@api_op
def send_datagram(st: ApiState, name: str, size: int) -> None:
    """One datagram of `size` generator bytes."""
    payload = datagram_payloads([size])[0]
    sent = st.socks[name].send(payload)
    if sent != size:
        raise RoleError(f"send_datagram {name}: sent {sent} of {size}")


@api_op
def fails(st: ApiState, expect: str, op: list[Any]) -> None:
    """The operation `op` must fail with errno `expect`; a last dict holds its keywords, as in a script."""
    name, *args = op
    kwargs = args.pop() if args and isinstance(args[-1], dict) else {}
    _must_fail(f"{op}", lambda: API_OPS[name](st, *args, **kwargs), expect)


@api_op
def emptied(st: ApiState, name: str, within: float) -> None:
    """Wait (deadline `within` s) until nothing is left in the socket's receive buffer (FIONREAD 0)."""
    import fcntl
    import termios

    sock = st.socks[name]
    deadline = time.monotonic() + within
    while True:
        got = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]
        if got == 0:
            return
        if time.monotonic() >= deadline:
            raise RoleError(f"{name}: {got} bytes still queued after {within:g} s, expected none")
        select.select([], [], [], 0.01)  # FIONREAD has no event to wait for: look again shortly


@api_op
def fill(st: ApiState, name: str) -> None:
    """Write until the socket's buffers and everything behind them are full (EAGAIN)."""
    sock = st.socks[name]
    sock.setblocking(False)
    chunk = b"x" * (1 << 16)
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        try:
            sock.send(chunk)
        except BlockingIOError:
            if not select.select([], [sock], [], 0.2)[1]:
                _top_up(sock)
                return  # nothing freed up for a while: full
    raise RoleError(f"fill {name}: still not full after 10 s")


def _top_up(sock: socket.socket) -> None:
    """Smaller writes into what a 64 KiB one did not fit, down to one byte."""
    size = 1 << 15
    while size:
        try:
            sock.send(b"x" * size)
        except BlockingIOError:
            size //= 2


@api_op
def oobinline(st: ApiState, name: str) -> None:
    st.socks[name].setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1)


@api_op
def send_oob(st: ApiState, name: str, text: str) -> None:
    """Send `text`; its last byte is the urgent byte."""
    st.socks[name].send(text.encode(), socket.MSG_OOB)


@api_op
def atmark(st: ApiState, name: str, expect: bool) -> None:
    got = sockatmark(st.socks[name])
    if got != expect:
        raise RoleError(f"{name}: at the urgent mark is {got}, expected {expect}")


# ---- ops for the errata scripts (semantics 0): descriptors, blocking calls, options


def _bounded(what: str, fn: Callable[[], Any], seconds: float = 10.0) -> Any:
    """Run a call that may block in a thread; a call still blocked after `seconds` fails the script."""
    import threading

    box: dict[str, Any] = {}

    def body() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # handed to the script's thread
            box["error"] = e

    t = threading.Thread(target=body, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        raise RoleError(f"{what}: still blocked after {seconds:g} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


@api_op
def dup(st: ApiState, name: str, of: str) -> None:
    """Another descriptor of the same socket (dup(2)): the splice belongs to the socket."""
    st.socks[name] = socket.socket(fileno=os.dup(st.socks[of].fileno()))


@api_op
def tcp_connecting(st: ApiState, name: str) -> None:
    """A TCP socket whose connect stays in progress: its listener's accept queue is full."""
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.bind((LOOPBACK, 0))
    ls.listen(0)
    filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    filler.settimeout(10)
    filler.connect(ls.getsockname())
    st.socks[f"{name}.listener"], st.socks[f"{name}.filler"] = ls, filler
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    s.connect_ex(ls.getsockname())
    s.setblocking(True)
    st.socks[name] = s
    try:
        s.getpeername()
    except OSError:
        return
    raise RoleError(f"tcp_connecting {name}: the connect completed; the host queued it anyway")


@api_op
def blocking(st: ApiState, name: str) -> None:
    st.socks[name].setblocking(True)


@api_op
def rcvtimeo(st: ApiState, name: str, seconds: float) -> None:
    """SO_RCVTIMEO, scaled."""
    t = seconds * st.scale
    sec = int(t)
    st.socks[name].setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                              struct.pack("ll", sec, int((t - sec) * 1_000_000)))


@api_op
def timeout(st: ApiState, name: str, seconds: float) -> None:
    """Python's socket timeout, scaled."""
    st.socks[name].settimeout(seconds * st.scale)


@api_op
def read_fails(st: ApiState, name: str, expect: str) -> None:
    """A read without flags must fail with errno `expect` ('timeout': Python's TimeoutError) within 10 s."""
    sock = st.socks[name]
    _must_fail(f"read {name}", lambda: _bounded(f"read {name}", lambda: st.splicer.recv(sock, 1 << 16)), expect)


@api_op
def read_zero(st: ApiState, name: str) -> None:
    """A zero-length read returns 0 at once, spliced or not."""
    sock = st.socks[name]
    data = _bounded(f"zero-length read {name}", lambda: st.splicer.recv(sock, 0), 2.0)
    if data != b"":
        raise RoleError(f"zero-length read {name}: returned {data!r}")


@api_op
def writer_start(st: ApiState, name: str, size: int) -> None:
    """A thread writes `size` bytes to the socket with blocking sends through the splicer."""
    import threading

    sock = st.socks[name]
    done = threading.Event()

    def body() -> None:
        data = b"w" * size
        while data:
            data = data[st.splicer.send(sock, data):]
        done.set()

    threading.Thread(target=body, daemon=True).start()
    st.vars[f"writer.{name}"] = done


@api_op
def writer_blocked(st: ApiState, name: str, seconds: float) -> None:
    """The writer must still be blocked after `seconds` (scaled)."""
    done = st.vars[f"writer.{name}"]
    if done.wait(seconds * st.scale):
        raise RoleError(f"writer on {name}: finished while it should be blocked")


@api_op
def writer_done(st: ApiState, name: str) -> None:
    if not st.vars[f"writer.{name}"].wait(10.0):
        raise RoleError(f"writer on {name}: still blocked after 10 s")


@api_op
def read_all(st: ApiState, name: str) -> None:
    """Read what is queued until nothing more comes for 0.2 s (frees the peer's send buffer)."""
    sock = st.socks[name]
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        if not select.select([sock], [], [], 0.2)[0]:
            return
        if not sock.recv(1 << 20, socket.MSG_DONTWAIT):
            return
    raise RoleError(f"read_all {name}: data still coming after 10 s")


@api_op
def read_some(st: ApiState, name: str, size: int) -> None:
    """One read of up to `size` queued bytes (at least one must be there within 10 s)."""
    sock = st.socks[name]
    if not select.select([sock], [], [], 10.0)[0]:
        raise RoleError(f"read_some {name}: nothing readable within 10 s")
    sock.recv(size, socket.MSG_DONTWAIT)


_SNAPSHOT_OPTIONS = [
    ("SOL_SOCKET", name) for name in ("SO_RCVLOWAT", "SO_SNDLOWAT", "SO_OOBINLINE", "SO_KEEPALIVE",
                                      "SO_BROADCAST", "SO_REUSEADDR")
] + [("IPPROTO_TCP", name) for name in ("TCP_NODELAY", "TCP_NOTSENT_LOWAT")] + [
    ("IPPROTO_IP", name) for name in ("IP_PKTINFO", "IP_RECVDSTADDR", "IP_RECVIF", "IP_TOS", "IP_TTL")
]


def _options(sock: socket.socket) -> dict[str, int]:
    values = {}
    for level, name in _SNAPSHOT_OPTIONS:
        opt = getattr(socket, name, None)
        if name == "IP_PKTINFO" and opt is None and sys.platform.startswith("linux"):
            opt = 8
        if opt is None:
            continue
        with contextlib.suppress(OSError):
            values[name] = sock.getsockopt(getattr(socket, level), opt)
    return values


@api_op
def options_save(st: ApiState, name: str) -> None:
    """Remember the socket options an application can read (errata 8)."""
    st.vars[f"options.{name}"] = _options(st.socks[name])


@api_op
def options_same(st: ApiState, name: str) -> None:
    before, after = st.vars[f"options.{name}"], _options(st.socks[name])
    changed = {k: (before.get(k), after.get(k)) for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    if changed:
        raise RoleError(f"{name}: options changed by the splice (before, after): {changed}")


@api_op
def recv_plain(st: ApiState, name: str, size: int) -> None:
    """The next datagram is `size` bytes and carries no control message."""
    sock = st.socks[name]
    if not st.splicer.wait_readable(sock, 10.0):
        raise RoleError(f"recv_plain {name}: nothing readable within 10 s")
    data, anc, _flags, _addr = sock.recvmsg(1 << 16, 256, socket.MSG_DONTWAIT)
    if len(data) != size or anc:
        raise RoleError(f"recv_plain {name}: {len(data)} bytes and control messages {anc}, "
                        f"expected {size} bytes and none")


@api_op
def setopt_padded(st: ApiState, source: str, drain: str, size: int) -> None:
    """struct splice followed by zero bytes up to `size` (the MCLBYTES bound, errata 11)."""
    value = pack_splice(st.fd(drain), 0, abi=host_abi())
    st.splicer.setopt(st.socks[source], value + bytes(size - len(value)))


@api_op
def nonsocket(st: ApiState, name: str, kind: str) -> None:
    """A descriptor that is no socket: 'pipe' (its write end), 'file' (a regular file), 'null' (/dev/null)."""
    if kind == "pipe":
        st.fds[f"{name}.read"], st.fds[name] = os.pipe()
    elif kind == "file":
        import tempfile

        fd, path = tempfile.mkstemp(prefix="sosplice-api-")
        os.unlink(path)
        st.fds[name] = fd
    elif kind == "null":
        st.fds[name] = os.open(os.devnull, os.O_RDWR)
    else:
        raise RoleError(f"unknown descriptor kind {kind!r}")


@api_op
def closed_fd(st: ApiState, name: str) -> None:
    """The number of a socket descriptor that is closed now, above the script's own, so no later open reuses it."""
    import fcntl

    base = max([s.fileno() for s in st.socks.values()] + list(st.fds.values()) + [2]) + 64
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with s:
        number = fcntl.fcntl(s.fileno(), fcntl.F_DUPFD, base)
    os.close(number)
    st.closed[name] = number


# ---- ops for the detection scripts (issue 13, tests/api/detection.py)


@api_op
def abort(st: ApiState, name: str) -> None:
    """Close the socket with SO_LINGER {1, 0}: its peer gets a reset (RST), not a FIN."""
    sock = st.socks.pop(name)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    st.splicer.close(sock)


@api_op
def send_size(st: ApiState, name: str, size: int) -> None:
    """Send `size` bytes of the generator stream through the splicer, all of them (blocking sends)."""
    sock, data, sent = st.socks[name], stream_bytes(size), 0
    while sent < size:
        sent += st.splicer.send(sock, data[sent:])
