"""Datagrams in batches: recvmmsg(2) and sendmmsg(2) through ctypes (Linux), stdlib only.

The UDP pass (somove_dgram.py) peeks a run of queued datagrams with one call,
decides datagram by datagram which it moves, sends those with one call and
only then consumes them from the source, so that a datagram it does not move
stays queued where the kernel would leave it.

Peeking past the head uses SO_PEEK_OFF (Linux 4.11 and newer). Linux marks a
zero-length datagram as peeked and skips a peeked one at an offset, so a
zero-length datagram that a batch peeked but did not consume would be skipped
by a later batch: the pass then gives up batching on that socket (`spoiled`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import socket
import struct
import sys

SO_PEEK_OFF = 42  # Linux
BATCH = 64
SLOT = 1 << 16  # a whole UDP datagram
NAME = 28  # sizeof(struct sockaddr_in6)
CONTROL = socket.CMSG_SPACE(12)  # one IP_PKTINFO
PKTINFO_AT = socket.CMSG_LEN(0)  # where its data starts in a slot: ifindex, spec_dst, header's dst
PKTINFO_END = socket.CMSG_LEN(12)
SOL_UDP, UDP_SEGMENT = 17, 103  # Linux 4.18: UDP generic segmentation offload
GSO_SEGMENTS = 64  # UDP_MAX_SEGMENTS of older kernels
GSO_BYTES = 65507  # the payload of one IPv4 UDP datagram at most
GSO_REFUSED = {errno.EINVAL, errno.EIO, errno.EMSGSIZE, errno.ENOPROTOOPT, errno.EOPNOTSUPP}
_CMSG_DATA = socket.CMSG_LEN(0)


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
                ("iov", ctypes.POINTER(_Iovec)), ("iovlen", ctypes.c_size_t),
                ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]


class _Mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", _Msghdr), ("len", ctypes.c_uint)]


_MMSG = ctypes.sizeof(_Mmsghdr)
_LEN = _Mmsghdr.len.offset // 4  # msg_len, in unsigned ints from the start of an mmsghdr


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.recvmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
        libc.sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
        libc.sendmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()


def available() -> bool:
    return _LIBC is not None


class Batch:
    """BATCH slots of one whole datagram each, with its sender and IP_PKTINFO."""

    def __init__(self) -> None:
        self.data = ctypes.create_string_buffer(BATCH * SLOT)
        self.names_buf = ctypes.create_string_buffer(BATCH * NAME)
        self.controls_buf = ctypes.create_string_buffer(BATCH * CONTROL)
        self.iovs = (_Iovec * BATCH)()
        self.peekvec = (_Mmsghdr * BATCH)()
        self.sendvec = (_Mmsghdr * BATCH)()
        self.sendiovs = (_Iovec * BATCH)()
        self.consumevec = (_Mmsghdr * BATCH)()  # no buffers: a consuming read keeps nothing
        base = ctypes.addressof(self.data)
        for i in range(BATCH):
            self.iovs[i].base = base + i * SLOT
            self.iovs[i].len = SLOT
            hdr = self.peekvec[i].hdr
            hdr.name = ctypes.addressof(self.names_buf) + i * NAME
            hdr.iov = ctypes.pointer(self.iovs[i])
            hdr.iovlen = 1
            hdr.control = ctypes.addressof(self.controls_buf) + i * CONTROL
            self.sendvec[i].hdr.iov = ctypes.pointer(self.sendiovs[i])
            self.sendvec[i].hdr.iovlen = 1
        self.lens = [0] * BATCH
        self.no_gso: set[int] = set()  # descriptors that refused UDP GSO
        self.gsoctl = ctypes.create_string_buffer(socket.CMSG_SPACE(2))  # one UDP_SEGMENT
        ctypes.memmove(self.gsoctl, struct.pack("@Nii", socket.CMSG_LEN(2), SOL_UDP, UDP_SEGMENT), _CMSG_DATA)
        self.gsohdr = _Msghdr()
        self.gsohdr.control = ctypes.addressof(self.gsoctl)
        self.gsohdr.controllen = socket.CMSG_SPACE(2)
        self._addrs: dict[bytes, tuple[str, int] | None] = {}

    def peek(self, sock: socket.socket, first: int, count: int, offset: int | None, flags: int) -> int:
        """Peek up to count datagrams into slots first..; how many came.

        With an offset (SO_PEEK_OFF), the datagrams that follow that many bytes
        of the queue; without, the head alone (count 1), as a plain MSG_PEEK.
        """
        assert _LIBC is not None
        count = min(count, BATCH - first)
        for i in range(first, first + count):
            hdr = self.peekvec[i].hdr
            hdr.namelen = NAME
            hdr.controllen = CONTROL
        vec = ctypes.byref(self.peekvec, first * ctypes.sizeof(_Mmsghdr))
        if offset is None:
            n = _LIBC.recvmmsg(sock.fileno(), vec, 1, flags, None)
            err = ctypes.get_errno()
        else:
            sock.setsockopt(socket.SOL_SOCKET, SO_PEEK_OFF, offset)
            n = _LIBC.recvmmsg(sock.fileno(), vec, count, flags, None)
            err = ctypes.get_errno()
            sock.setsockopt(socket.SOL_SOCKET, SO_PEEK_OFF, -1)
        if n < 0:
            raise OSError(err, "recvmmsg")
        if n > 0:
            raw = ctypes.string_at(ctypes.addressof(self.peekvec) + first * _MMSG, n * _MMSG)
            self.lens[first:first + n] = memoryview(raw).cast("I")[_LEN::_MMSG // 4].tolist()
        return int(n)

    def names(self, n: int) -> bytes:
        """The senders of the first n peeked datagrams, NAME bytes each (use `address`)."""
        return ctypes.string_at(ctypes.addressof(self.names_buf), n * NAME)

    def controls(self, n: int) -> bytes | None:
        """The IP_PKTINFO control messages of the first n, CONTROL bytes each; None without."""
        if self.peekvec[0].hdr.controllen < PKTINFO_END:
            return None
        return ctypes.string_at(ctypes.addressof(self.controls_buf), n * CONTROL)

    def address(self, raw: bytes) -> tuple[str, int] | None:
        """A sender's (host, port) from its NAME bytes."""
        if raw not in self._addrs:
            self._addrs[raw] = _addr(raw)
        return self._addrs[raw]

    def send(self, fd: int, first: int, count: int, flags: int, gso: bool = False) -> int:
        """Send peeked datagrams first..first+count-1 on a connected socket; how many went.

        With `gso`, a run of datagrams of one size (and a shorter last one) goes as
        one UDP GSO send: the kernel cuts it into the same datagrams, so the peer
        receives each as it was, but a capture on the way sees one packet.
        Raises OSError when the first of them could not go. Linux's sendmmsg drops
        the error of a later one: the caller sends again from there to learn it.
        """
        assert _LIBC is not None
        for j in range(count):
            out = self.sendiovs[j]
            out.base = self.iovs[first + j].base
            out.len = self.lens[first + j]
        gso = gso and fd not in self.no_gso
        done = 0
        while done < count:
            run = self._run(first + done, count - done) if gso else 1
            try:
                if run > 1:
                    self._send_run(fd, done, run, self.lens[first + done], flags)
                    sent = unit = run
                else:
                    unit = self._singles(first + done, count - done) if gso else count - done
                    sent = _LIBC.sendmmsg(fd, ctypes.byref(self.sendvec, done * _MMSG), unit, flags)
                    if sent < 0:
                        raise OSError(ctypes.get_errno(), "sendmmsg")
            except OSError as e:
                if run > 1 and e.errno in GSO_REFUSED:
                    self.no_gso.add(fd)  # this socket cannot: one datagram at a time from now
                    gso = False
                    continue
                if done:
                    return done
                raise
            done += sent
            if sent < unit:
                break
        return done

    def _run(self, i: int, left: int) -> int:
        """How many datagrams from slot i one GSO send can carry: one size, a shorter last."""
        size = self.lens[i]
        if size == 0:
            return 1
        run, total = 1, size
        while run < left and run < GSO_SEGMENTS and self.lens[i + run] == size and total + size <= GSO_BYTES:
            run, total = run + 1, total + size
        if run < left and run < GSO_SEGMENTS and 0 < self.lens[i + run] < size \
                and total + self.lens[i + run] <= GSO_BYTES:
            run += 1
        return run

    def _singles(self, i: int, left: int) -> int:
        """How many datagrams from slot i go one by one before a GSO run starts."""
        n = 1
        while n < left and self._run(i + n, left - n) < 2:
            n += 1
        return n

    def _send_run(self, fd: int, j: int, run: int, size: int, flags: int) -> None:
        assert _LIBC is not None
        hdr = self.gsohdr
        hdr.iov = ctypes.cast(ctypes.byref(self.sendiovs, j * ctypes.sizeof(_Iovec)), ctypes.POINTER(_Iovec))
        hdr.iovlen = run
        ctypes.memmove(ctypes.addressof(self.gsoctl) + _CMSG_DATA, size.to_bytes(2, sys.byteorder), 2)
        if _LIBC.sendmsg(fd, ctypes.byref(hdr), flags) < 0:
            raise OSError(ctypes.get_errno(), "sendmsg")

    def consume(self, fd: int, count: int, flags: int) -> int:
        """Take count datagrams off the head of the queue, whole; how many were there."""
        assert _LIBC is not None
        if count <= 0:
            return 0
        n = _LIBC.recvmmsg(fd, self.consumevec, min(count, BATCH), flags, None)
        if n < 0:
            err = ctypes.get_errno()
            raise OSError(err, "recvmmsg")
        return int(n)


def _addr(raw: bytes) -> tuple[str, int] | None:
    if len(raw) < 4:
        return None
    family = int.from_bytes(raw[:2], sys.byteorder)
    port = int.from_bytes(raw[2:4], "big")
    if family == socket.AF_INET and len(raw) >= 8:
        return (socket.inet_ntop(socket.AF_INET, raw[4:8]), port)
    if family == socket.AF_INET6 and len(raw) >= 24:
        return (socket.inet_ntop(socket.AF_INET6, raw[8:24]), port)
    return None
