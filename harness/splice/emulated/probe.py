"""What Linux tells about a socket, in the terms the BSD code asks it.

so_state (connected, connecting, SS_CANTSENDMORE by TCP state), sb_cc (FIONREAD),
the urgent mark (SIOCATMARK), sb_hiwat (SO_SNDBUF as the application set it),
unacknowledged send bytes (TIOCOUTQ), so_error with BSD's reading of a reset.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import socket
import struct
import sys
import termios
from collections.abc import Iterator

Addr = tuple[str, int]

TCP_NOTSENT_LOWAT = getattr(socket, "TCP_NOTSENT_LOWAT", None)
IP_PKTINFO: int | None = getattr(socket, "IP_PKTINFO", 8 if sys.platform.startswith("linux") else None)
SIOCATMARK = getattr(termios, "SIOCATMARK", 0x8905)
PEEK_NOWAIT = int(socket.MSG_PEEK | socket.MSG_DONTWAIT)  # an int: enum flags cost per datagram
PKTINFO_SPACE = socket.CMSG_SPACE(12)
POLLRDHUP = getattr(select, "POLLRDHUP", 0x2000)  # the peer shut down its writing (Linux)

# Linux tcp_info.tcpi_state values
ESTABLISHED, SYN_SENT, SYN_RECV, CLOSE, LISTEN, CLOSE_WAIT, TIME_WAIT = 1, 2, 3, 7, 10, 8, 6
CAN_SEND = {ESTABLISHED, CLOSE_WAIT}
CONNECTING = {SYN_SENT, SYN_RECV}
DISCONNECTED = {CLOSE, LISTEN, TIME_WAIT}


def addr(a: object) -> Addr | None:
    if isinstance(a, tuple) and len(a) >= 2:
        return (str(a[0]), int(a[1]))
    return None


def borrow(fd: int) -> socket.socket:
    """A socket object over someone else's descriptor; detach() it, never close it."""
    return socket.socket(fileno=fd)


@contextlib.contextmanager
def nowait(sock: socket.socket) -> Iterator[socket.socket]:
    """The same descriptor without Python's timeout, so MSG_DONTWAIT never waits."""
    borrowed = borrow(sock.fileno())
    try:
        yield borrowed
    finally:
        borrowed.detach()


def is_tcp(s: socket.socket) -> bool:
    return s.type == socket.SOCK_STREAM


def tcp_state(s: socket.socket) -> int | None:
    tcp_info = getattr(socket, "TCP_INFO", None)
    if tcp_info is None:
        return None
    try:
        return s.getsockopt(socket.IPPROTO_TCP, tcp_info, 1)[0]
    except OSError:
        return None


def listening(s: socket.socket) -> bool:
    """SO_ACCEPTCONN."""
    try:
        return bool(s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
    except OSError:
        return False


def connected(s: socket.socket) -> bool:
    """Connected or connecting (SS_ISCONNECTED | SS_ISCONNECTING)."""
    if is_tcp(s):
        state = tcp_state(s)
        if state is not None:
            return state not in DISCONNECTED
    try:
        s.getpeername()
        return True
    except OSError:
        return False


def connecting(s: socket.socket) -> bool:
    return is_tcp(s) and tcp_state(s) in CONNECTING


def cant_send(s: socket.socket) -> bool:
    """A TCP socket past the states that send: closed, shut or reset."""
    if not is_tcp(s):
        return False
    state = tcp_state(s)
    return state is not None and state not in CAN_SEND and state not in CONNECTING


def splicable(s: socket.socket) -> bool:
    """pr_usrreqs of a protocol that splices: TCP and UDP over IPv4 and IPv6."""
    if s.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    return s.type in (socket.SOCK_STREAM, socket.SOCK_DGRAM)


def bsd_so_error(s: socket.socket, err: int) -> int:
    """Linux records a reset that follows the peer's FIN as EPIPE; BSD as ECONNRESET."""
    if err == errno.EPIPE and is_tcp(s) and tcp_state(s) == CLOSE:
        return errno.ECONNRESET
    return err


def so_error(s: socket.socket) -> int:
    """so_error as BSD would hold it; reading it clears Linux's copy."""
    return bsd_so_error(s, s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))


def fionread(s: socket.socket) -> int:
    """sb_cc of the receive buffer (Linux stops at an out-of-line urgent mark)."""
    buf = fcntl.ioctl(s.fileno(), termios.FIONREAD, b"\0\0\0\0")
    value: int = struct.unpack("i", buf)[0]
    return value


def atmark(s: socket.socket) -> bool:
    buf = fcntl.ioctl(s.fileno(), SIOCATMARK, b"\0\0\0\0")
    return bool(struct.unpack("i", buf)[0])


def outq(s: socket.socket) -> int | None:
    """Bytes in the send buffer not yet acknowledged, or None where the host cannot tell."""
    try:
        buf = fcntl.ioctl(s.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except OSError:
        return None
    value: int = struct.unpack("i", buf)[0]
    return value


_SNDBUF_DOUBLED = os.uname().sysname == "Linux"


def sndbuf(s: socket.socket) -> int:
    """sb_hiwat of the send buffer: SO_SNDBUF as asked for (Linux stores twice that)."""
    value = s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    return value // 2 if _SNDBUF_DOUBLED else value


def rcvtimeo(sock: socket.socket) -> float:
    """SO_RCVTIMEO in seconds, 0 for none."""
    try:
        sec, usec = struct.unpack("ll", sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16))
    except (OSError, struct.error):
        return 0.0
    return float(sec) + float(usec) / 1e6


def peek_eof(sock: socket.socket) -> bool:
    """The peer's FIN is next in the receive buffer (SS_CANTRCVMORE with sb_cc 0)."""
    try:
        with nowait(sock) as s:
            return s.recv(1, PEEK_NOWAIT) == b""
    except OSError:
        return False


def peer_shut(sock: socket.socket) -> bool:
    """The peer's FIN has arrived, even behind queued data (SBS_CANTRCVMORE; Linux POLLRDHUP)."""
    poller = select.poll()
    poller.register(sock.fileno(), POLLRDHUP)
    return any(ev & POLLRDHUP for _fd, ev in poller.poll(0))


def recv_queued(sock: socket.socket, size: int, flags: int) -> bytes:
    """What a read gets without waiting; b"" when nothing is queued (a pending error goes after the data)."""
    try:
        with nowait(sock) as s:
            return s.recv(size, flags | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return b""
