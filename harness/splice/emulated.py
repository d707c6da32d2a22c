"""A user-space splice engine with OpenBSD (or FreeBSD) semantics.

Follows spec/semantics.md appendix A: data that has not been moved stays in
the source's kernel receive buffer (peek, send, then consume what the drain
took), so unsplicing never has to give bytes back. One engine thread per
process runs the asynchronous move passes; the initial pass runs inside
splice(), as the kernel's does. Pending errors are kept per socket and handed
out the way so_error is: by error(), by the next recv() once the data is gone,
or by the next send().

Stdlib only: this module travels to the remote host with the agent.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import fcntl
import os
import select
import socket
import stat
import struct
import sys
import termios
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from . import kpipe
from .api import (
    OPENBSD,
    Personality,
    oserror,
    split_idle,
    unpack_splice,
)

M_MAXLOOP = 128  # hops before a moved packet is refused with ELOOP
MCLBYTES = 2048  # largest option value the kernel copies in
CHUNK = 1 << 16  # bytes peeked per move step
SNDLOWAT = MCLBYTES  # OpenBSD's default SO_SNDLOWAT of a drain (3.3 step 3)
URGENT_SLACK = 1024  # urgent data may overfill the drain by this much, as send(MSG_OOB) may
# After a writability event that did not bring BSD send space back (Linux counts its
# buffers differently), the next look at the drain is this much later.
# seconds until a drain short of BSD space is looked at again (acknowledgements raise no
# event): the first recheck soon, each further one without progress twice as late, up to the max
SPACE_RECHECK = 0.0002
SPACE_RECHECK_MAX = 0.002
IDLE_SAMPLES = 8  # looks per idle time for wakeups poll does not report (errata 2)
FINE_WAIT = 0.002  # waits shorter than this are timed by select(2), not poll(2)
_TCP_NOTSENT_LOWAT = getattr(socket, "TCP_NOTSENT_LOWAT", None)
SIOCATMARK = getattr(termios, "SIOCATMARK", 0x8905)
_PEEK_NOWAIT = int(socket.MSG_PEEK | socket.MSG_DONTWAIT)  # an int: enum flags cost per datagram
_PKTINFO_SPACE = socket.CMSG_SPACE(12)
_POLLRDHUP = getattr(select, "POLLRDHUP", 0x2000)  # the peer shut down its writing (Linux)

# Linux tcp_info.tcpi_state values
_ESTABLISHED, _SYN_SENT, _SYN_RECV, _CLOSE, _LISTEN, _CLOSE_WAIT = 1, 2, 3, 7, 10, 8
_CAN_SEND = {_ESTABLISHED, _CLOSE_WAIT}
_CONNECTING = {_SYN_SENT, _SYN_RECV}
_DISCONNECTED = {_CLOSE, _LISTEN, 6}  # 6: TIME_WAIT

# A drain's own splice may have ended with these; they do not stop its source (3.3 1.3).
_IGNORED_DRAIN_ERRORS = {errno.ETIMEDOUT, errno.EFBIG, errno.ELOOP}

Addr = tuple[str, int]


def _addr(a: object) -> Addr | None:
    if isinstance(a, tuple) and len(a) >= 2:
        return (str(a[0]), int(a[1]))
    return None


def _borrow(fd: int) -> socket.socket:
    """A socket object over someone else's descriptor; detach() it, never close it."""
    return socket.socket(fileno=fd)


@contextlib.contextmanager
def _nowait(sock: socket.socket) -> Iterator[socket.socket]:
    """The same descriptor without Python's timeout, so MSG_DONTWAIT never waits."""
    borrowed = _borrow(sock.fileno())
    try:
        yield borrowed
    finally:
        borrowed.detach()


def _is_tcp(s: socket.socket) -> bool:
    return s.type == socket.SOCK_STREAM


def _tcp_state(s: socket.socket) -> int | None:
    tcp_info = getattr(socket, "TCP_INFO", None)
    if tcp_info is None:
        return None
    try:
        return s.getsockopt(socket.IPPROTO_TCP, tcp_info, 1)[0]
    except OSError:
        return None


def _listening(s: socket.socket) -> bool:
    try:
        return bool(s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
    except OSError:
        return False


def _connected(s: socket.socket) -> bool:
    """Connected or connecting (SS_ISCONNECTED | SS_ISCONNECTING)."""
    if _is_tcp(s):
        state = _tcp_state(s)
        if state is not None:
            return state not in _DISCONNECTED
    try:
        s.getpeername()
        return True
    except OSError:
        return False


def _splicable(s: socket.socket) -> bool:
    if s.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    return s.type in (socket.SOCK_STREAM, socket.SOCK_DGRAM)


def _bsd_so_error(s: socket.socket, err: int) -> int:
    """Linux records a reset that follows the peer's FIN as EPIPE; BSD as ECONNRESET."""
    if err == errno.EPIPE and _is_tcp(s) and _tcp_state(s) == _CLOSE:
        return errno.ECONNRESET
    return err


def _fionread(s: socket.socket) -> int:
    buf = fcntl.ioctl(s.fileno(), termios.FIONREAD, b"\0\0\0\0")
    value: int = struct.unpack("i", buf)[0]
    return value


def _atmark(s: socket.socket) -> bool:
    buf = fcntl.ioctl(s.fileno(), SIOCATMARK, b"\0\0\0\0")
    return bool(struct.unpack("i", buf)[0])


def _outq(s: socket.socket) -> int | None:
    """Bytes in the send buffer not yet acknowledged, or None where the host cannot tell."""
    try:
        buf = fcntl.ioctl(s.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except OSError:
        return None
    value: int = struct.unpack("i", buf)[0]
    return value


_SNDBUF_DOUBLED = os.uname().sysname == "Linux"


def _sndbuf(s: socket.socket) -> int:
    """The send buffer size the application asked for (Linux stores twice that)."""
    value = s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    return value // 2 if _SNDBUF_DOUBLED else value


@dataclass
class Link:
    source: socket.socket
    drain: socket.socket
    max: int
    idle: float
    tcp: bool
    oobinline: bool
    personality: Personality
    deadline: float | None = None
    waiting: bool = False  # waiting for the drain to become writable (full, or connecting)
    watch_eof: bool = False  # drain connecting, source empty: its EOF still ends the splice (errata 1)
    space_short: bool = False  # the last pass stopped for lack of BSD send space in the drain
    recheck_wait: float = SPACE_RECHECK  # the next recheck's delay (doubles while nothing moves)
    recheck: float | None = None  # when to look at the drain again (space not reported by poll)
    sample_at: float | None = None  # when to look for wakeups poll does not report (errata 2)
    seen: tuple[int, int] = (0, 0)
    seen_counter: int = 0  # the counter at the last re-arm
    by_recheck: bool = False  # this pass is the engine's own look at the drain, no wakeup  # the source's queue and the drain's unacknowledged bytes then
    notsent_saved: int | None = None  # the drain's TCP_NOTSENT_LOWAT before the splice
    pktinfo_saved: int | None = None  # the source's IP_PKTINFO before the splice (errata 8)
    pipe: kpipe.KernelPipe | None = None  # the splice(2) fast path, TCP only
    # hop keys, kept once known for TCP (a connected socket's addresses do not change)
    src_key: tuple[Addr, Addr | None] | None = None  # (source's local, source's peer)
    out_key: tuple[Addr, Addr] | None = None  # (drain's peer, drain's local)

    @property
    def sfd(self) -> int:
        return self.source.fileno()

    @property
    def dfd(self) -> int:
        return self.drain.fileno()


@dataclass
class _Hops:
    """Hop counts of data in flight towards one receiving socket, oldest first."""

    ranges: collections.deque[list[int]] = field(default_factory=collections.deque)

    def first(self) -> int:
        return self.ranges[0][1] if self.ranges else 0

    def take(self, n: int, datagram: bool) -> list[tuple[int, int]]:
        """Remove n bytes (or one datagram); return their (length, hops) pieces."""
        if datagram:
            if self.ranges:
                _size, hops = self.ranges.popleft()
                return [(n, hops)]
            return [(n, 0)]
        out: list[tuple[int, int]] = []
        while n > 0 and self.ranges:
            head = self.ranges[0]
            k = min(n, head[0])
            out.append((k, head[1]))
            head[0] -= k
            n -= k
            if head[0] == 0:
                self.ranges.popleft()
        if n > 0:
            out.append((n, 0))
        return out


class Engine:
    """The per-process splice engine: links, counters, pending errors, one mover thread."""

    _instance: Engine | None = None
    _instance_lock = threading.Lock()

    @classmethod
    def get(cls) -> Engine:
        with cls._instance_lock:
            if cls._instance is None or cls._instance.pid != os.getpid():
                cls._instance = Engine()
            return cls._instance

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.cond = threading.Condition(threading.RLock())
        self.links: dict[int, Link] = {}
        self.drains: dict[int, int] = {}  # drain fd -> source fd
        self.counters: dict[int, int] = {}
        self.errors: dict[int, int] = {}
        self.hops: dict[tuple[Addr, Addr | None], _Hops] = {}
        # a splice belongs to the socket (errata 7): another descriptor of the same open
        # socket (dup, SCM_RIGHTS, fork) is mapped to the descriptor the engine knows it by
        self.idents: dict[tuple[int, int], int] = {}
        self.shut_wr: set[tuple[int, int]] = set()  # sockets shut for writing (SS_CANTSENDMORE)
        self.poller = select.poll()
        self.registered: dict[int, int] = {}
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.poller.register(self.wake_r, select.POLLIN)
        # A forked child's unsplice is carried out here (see EmulatedSplicer.unsplice).
        self.ctl, self.ctl_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.poller.register(self.ctl.fileno(), select.POLLIN)
        self.thread = threading.Thread(target=self._run, name="sosplice", daemon=True)
        self.thread.start()

    # ---- the mover thread

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(self.wake_w, b"x")

    def _run(self) -> None:
        while True:
            try:
                self._step()
            except Exception as e:  # keep moving other splices; say what went wrong
                os.write(2, f"sosplice engine: {type(e).__name__}: {e}\n".encode())

    def _step(self) -> None:
        with self.cond:
            deadlines = [t for link in self.links.values()
                         for t in (link.deadline, link.recheck, link.sample_at) if t]
        timeout = None
        if deadlines:
            left = min(deadlines) - time.monotonic()
            timeout = max(0, int(left * 1000) + 1)
            if 0 < left < FINE_WAIT:
                # poll(2) counts whole milliseconds; a sub-millisecond recheck (waiting
                # for acknowledgements that free drain space) waits on the wake pipe
                # alone, with select's microsecond timeout, then looks at every socket
                timeout = 0
                select.select([self.wake_r], [], [], left)
        events = self.poller.poll(timeout)
        with self.cond:
            for fd, ev in events:
                if fd == self.wake_r:
                    try:
                        while os.read(self.wake_r, 4096):
                            pass
                    except BlockingIOError:
                        pass
                    continue
                if fd == self.ctl.fileno():
                    self._control()
                    continue
                if ev & select.POLLNVAL:
                    self._forget_fd(fd)
                    continue
                for link in list(self.links.values()):
                    if fd in (link.sfd, link.dfd) and self.links.get(link.sfd) is link:
                        self._pass(link)
            now = time.monotonic()
            for link in list(self.links.values()):
                if link.sample_at is not None and link.sample_at <= now:
                    self._sample(link)
                    if self.links.get(link.sfd) is not link:
                        continue
                if link.deadline is not None and link.deadline <= now:
                    self._timeout(link)
                elif link.recheck is not None and link.recheck <= now and self.links.get(link.sfd) is link:
                    link.recheck = None
                    link.by_recheck = True
                    self._pass(link)

    def _control(self) -> None:
        """A request from a forked child: [op] with fds [socket, reply socket]."""
        try:
            msg, fds, _flags, _addr = socket.recv_fds(self.ctl, 64, 2, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        if len(fds) != 2:
            for fd in fds:
                os.close(fd)
            return
        sock_fd, reply_fd = fds
        answer = b"EINVAL"
        try:
            if msg == b"unsplice":
                ident = os.fstat(sock_fd)
                answer = b"EPROTO"  # not spliced; the child names it per personality
                for link in list(self.links.values()):
                    st = os.fstat(link.sfd)
                    if (st.st_dev, st.st_ino) == (ident.st_dev, ident.st_ino):
                        self.dissolve(link)
                        answer = b"0"
                        break
            with contextlib.suppress(OSError):
                os.write(reply_fd, answer)
        finally:
            os.close(sock_fd)
            os.close(reply_fd)

    def _sync(self, *fds: int) -> None:
        for fd in fds:
            mask = 0
            interested = False
            for link in self.links.values():
                if link.sfd == fd:
                    interested = True
                    if not link.waiting and link.recheck is None:
                        mask |= select.POLLIN
                    elif link.watch_eof:
                        mask |= _POLLRDHUP
                if link.dfd == fd:
                    interested = True
                    if link.waiting and link.recheck is None:
                        mask |= select.POLLOUT
            if not interested:
                if fd in self.registered:
                    del self.registered[fd]
                    with contextlib.suppress(KeyError, ValueError):
                        self.poller.unregister(fd)
            elif self.registered.get(fd) != mask:
                self.registered[fd] = mask
                self.poller.register(fd, mask)
        self._wake()

    # ---- sockets, not descriptor numbers (errata 7)

    @staticmethod
    def ident(fd: int) -> tuple[int, int] | None:
        try:
            st = os.fstat(fd)
        except OSError:
            return None
        return (st.st_dev, st.st_ino)

    def canon(self, fd: int) -> int:
        """The descriptor the engine keeps this socket's splice state under."""
        if fd in self.links or fd in self.drains or fd in self.counters:
            return fd
        ident = self.ident(fd)
        return fd if ident is None else self.idents.get(ident, fd)

    def remember(self, fd: int) -> None:
        ident = self.ident(fd)
        if ident is not None:
            self.idents[ident] = fd

    def forget_ident(self, fd: int) -> None:
        for key in [k for k, v in self.idents.items() if v == fd]:
            del self.idents[key]

    def cant_send_more(self, s: socket.socket) -> bool:
        """SS_CANTSENDMORE: shut for writing (Linux shows it for TCP by state, UDP not at all)."""
        ident = self.ident(s.fileno())
        return ident is not None and ident in self.shut_wr

    # ---- linking and dissolving

    def link(self, link: Link) -> None:
        sfd, dfd = link.sfd, link.dfd
        self.links[sfd] = link
        self.drains[dfd] = sfd
        self.counters[sfd] = 0
        self.remember(sfd)
        self.remember(dfd)
        if not link.personality.idle_restarts and link.idle:
            link.deadline = time.monotonic() + link.idle
        self._pass(link)
        if self.links.get(sfd) is link:
            self._sync(sfd, dfd)

    def dissolve(self, link: Link, error: int = 0) -> None:
        sfd, dfd = link.sfd, link.dfd
        if self.links.get(sfd) is not link:
            return
        del self.links[sfd]
        self.drains.pop(dfd, None)
        if error:
            self.errors[sfd] = error
        link.deadline = link.recheck = link.sample_at = None
        if link.pipe is not None:
            link.pipe.close()
            link.pipe = None
        # errata 8: the options the engine set for itself are put back
        if link.notsent_saved is not None and _TCP_NOTSENT_LOWAT is not None:
            with contextlib.suppress(OSError):
                link.drain.setsockopt(socket.IPPROTO_TCP, _TCP_NOTSENT_LOWAT, link.notsent_saved)
        if link.pktinfo_saved is not None and _IP_PKTINFO is not None:
            with contextlib.suppress(OSError):
                link.source.setsockopt(socket.IPPROTO_IP, _IP_PKTINFO, link.pktinfo_saved)
        link.source.detach()
        link.drain.detach()
        self._sync(sfd, dfd)
        self.cond.notify_all()

    def _timeout(self, link: Link) -> None:
        self.dissolve(link, errno.ETIMEDOUT if link.personality.etimedout else 0)

    def _forget_fd(self, fd: int) -> None:
        """The descriptor was closed behind our back: end what used it."""
        for link in list(self.links.values()):
            if fd in (link.sfd, link.dfd):
                self.dissolve(link)
        self.counters.pop(fd, None)
        self.errors.pop(fd, None)
        self.forget_ident(fd)
        self._sync(fd)

    # ---- state checks of a pass (3.3 step 1)

    def _pending_error(self, s: socket.socket) -> int:
        fd = s.fileno()
        if self.errors.get(fd):
            return self.errors[fd]
        err = _bsd_so_error(s, s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
        if err:
            self.errors[fd] = err  # reading it cleared the kernel's copy
        return err

    def _cant_send(self, s: socket.socket) -> bool:
        if not _is_tcp(s):
            return False
        state = _tcp_state(s)
        return state is not None and state not in _CAN_SEND and state not in _CONNECTING

    def _connecting(self, s: socket.socket) -> bool:
        return _is_tcp(s) and _tcp_state(s) in _CONNECTING

    # ---- loop detection (appendix A: hops counted across this engine's own splices)

    def _hop_key_in(self, s: socket.socket, sender: Addr | None) -> tuple[Addr, Addr | None] | None:
        try:
            local = _addr(s.getsockname())
        except OSError:
            return None
        if local is None:
            return None
        if sender is None:
            try:
                sender = _addr(s.getpeername())
            except OSError:
                sender = None
        return (local, sender)

    def _link_key(self, link: Link) -> tuple[Addr, Addr | None] | None:
        """The hop key of a link's source (its own sender unknown): _hop_key_in, kept for TCP."""
        if link.src_key is not None:
            return link.src_key
        key = self._hop_key_in(link.source, None)
        if link.tcp and key is not None and key[1] is not None:
            link.src_key = key
        return key

    def _out_key(self, drain: socket.socket, link: Link | None) -> tuple[Addr, Addr | None] | None:
        """(drain's peer, drain's local): where data sent on drain arrives; kept for a TCP link."""
        if link is not None and link.out_key is not None:
            return link.out_key
        try:
            peer = _addr(drain.getpeername())
            local = _addr(drain.getsockname())
        except OSError:
            return None
        if peer is None:
            return None
        if link is not None and link.tcp and local is not None:
            link.out_key = (peer, local)
        return (peer, local)

    def _hop_note_out(self, drain: socket.socket, pieces: list[tuple[int, int]],
                      link: Link | None = None) -> None:
        """Data sent on drain arrives at drain's peer one hop further, if that is ours."""
        key = self._out_key(drain, link)
        if key is None:
            return
        peer, local = key
        ours = any(self._link_key(other) in (key, (peer, None)) for other in self.links.values())
        if not ours:
            return
        hops = self.hops.setdefault((peer, local), _Hops())
        for n, h in pieces:
            hops.ranges.append([n, h + 1])

    def _hops_for(self, key: tuple[Addr, Addr | None] | None) -> _Hops:
        if key is None:
            return _Hops()
        return self.hops.setdefault(key, _Hops())

    # ---- one move pass (3.3)

    def _pass(self, link: Link) -> None:
        try:
            if link.tcp:
                self._pass_stream(link)
            else:
                self._pass_datagram(link)
        except OSError as e:
            # A descriptor closed or reset under us: end the splice the way the kernel would.
            self.dissolve(link, 0 if e.errno == errno.EBADF else (e.errno or errno.EIO))

    def _checks(self, link: Link) -> int | None:
        """Step 1: an errno to end with, 0 to stop and wait for the drain, None to go on."""
        err = self._pending_error(link.source)
        if err:
            return err
        state = _tcp_state(link.drain) if link.tcp else None
        if state is not None and state not in _CAN_SEND and state not in _CONNECTING:
            # the drain cannot send any more; FreeBSD ends the splice without an error when the
            # drain was shut for writing (errata 11), with EPIPE when it was reset or closed
            quiet = not link.personality.drain_shut_epipe and self.cant_send_more(link.drain)
            return 0 if quiet else errno.EPIPE
        if not link.tcp and self.cant_send_more(link.drain):
            return errno.EPIPE  # errata 6: a UDP drain shut for writing ends the splice at once
        derr = self.errors.get(link.dfd) or self._pending_error(link.drain)
        if derr and derr not in _IGNORED_DRAIN_ERRORS:
            return derr
        if state in _CONNECTING:
            link.waiting = True
            return 0
        return None

    def _finish(self, link: Link, err: int, max_reached: bool, eof: bool) -> None:
        """Step 12: EFBIG at an exact max, dissolve or re-arm the idle timer."""
        counter = self.counters[link.sfd]
        if not err and max_reached and counter == link.max and link.personality.efbig:
            err = errno.EFBIG
        if err or max_reached or eof or self._cant_send(link.drain):
            self.dissolve(link, err)
            return
        by_recheck, link.by_recheck = link.by_recheck, False
        if link.idle and link.personality.idle_restarts:
            now = time.monotonic()
            if by_recheck and counter == link.seen_counter and not self._woken(link, self._wakeup_marks(link)):
                # our own look at the drain, not a kernel wakeup: the timer runs on
                self._sync(link.sfd, link.dfd)
                return
            link.seen_counter = counter
            link.deadline = now + link.idle
            # errata 2: while the splice waits, source receives and drain acknowledgements
            # are wakeups too; Linux reports neither by poll, so they are sampled
            link.seen = self._wakeup_marks(link)
            link.sample_at = now + link.idle / IDLE_SAMPLES
        self._sync(link.sfd, link.dfd)

    @staticmethod
    def _wakeup_marks(link: Link) -> tuple[int, int]:
        """(bytes queued on the source, bytes unacknowledged on the drain): a change is a wakeup."""
        try:
            return _fionread(link.source), _outq(link.drain) or 0
        except OSError:
            return (-1, -1)

    def _sample(self, link: Link) -> None:
        """sorwakeup/sowwakeup that poll does not show: a pass if either side changed (errata 2)."""
        link.sample_at = time.monotonic() + link.idle / IDLE_SAMPLES
        marks = self._wakeup_marks(link)
        if self._woken(link, marks):
            self._pass(link)
        else:
            link.seen = marks

    @staticmethod
    def _woken(link: Link, marks: tuple[int, int]) -> bool:
        return marks[0] > link.seen[0] or marks[1] < link.seen[1]

    def _pass_stream(self, link: Link) -> None:
        src, dst = link.source, link.drain
        link.waiting = link.watch_eof = False
        link.recheck = None
        max_reached = eof = False
        err = 0
        while True:
            check = self._checks(link)
            if check is not None:
                err = check
                if check == 0 and link.waiting and _fionread(src) == 0:
                    # errata 1: the move is skipped for a connecting drain, the EOF test is not
                    eof = self._at_eof(link)
                    link.watch_eof = True
                elif check == 0 and link.waiting and link.personality.name == "freebsd":
                    # errata 11, FreeBSD: data sent into a drain still connecting is lost, ENOTCONN
                    lost = _fionread(src)
                    if link.max:
                        lost = min(lost, link.max - self.counters[link.sfd])
                    with contextlib.suppress(OSError):
                        src.recv(lost, socket.MSG_DONTWAIT)
                    err = errno.ENOTCONN
                break
            queued = _fionread(src)
            if queued == 0 and not link.oobinline:
                # Linux's FIONREAD stops at an out-of-line urgent mark; data may follow it
                try:
                    queued = len(src.recv(CHUNK, socket.MSG_PEEK | socket.MSG_DONTWAIT))
                except OSError:
                    queued = 0
            amount = queued
            if link.max:
                remaining = link.max - self.counters[link.sfd]
                if queued >= remaining:
                    amount, max_reached = remaining, True
            if amount <= 0:
                eof = queued == 0 and self._at_eof(link)
                if eof and self.errors.get(link.sfd):
                    err = self.errors[link.sfd]
                break
            hops = self._hops_for(self._link_key(link))
            if link.personality.eloop and hops.first() >= M_MAXLOOP:
                err = errno.ELOOP
                break
            # 3.5; errata 11: FreeBSD forwards an inline urgent byte as plain data
            urgent = link.oobinline and link.personality.urgent_forwarded and _atmark(src)
            space = self._space(link)
            if space is not None:
                space += URGENT_SLACK if urgent else 0
                if space < amount:  # 3.3 step 3
                    max_reached = False
                    if space <= 0 or space < min(SNDLOWAT, _sndbuf(dst)):
                        self._wait_for_space(link)
                        break
                    amount = space
            if link.pipe is not None and not urgent and not _atmark(src):
                try:
                    moved = link.pipe.move(src, dst, amount)
                except OSError as e:
                    err = self._send_failed(link, e)
                    break
                if moved:
                    self.counters[link.sfd] += moved
                    self._hop_note_out(dst, hops.take(moved, datagram=False), link)
                    link.space_short, link.recheck_wait = False, SPACE_RECHECK
                    if max_reached and self.counters[link.sfd] >= link.max:
                        break
                    continue
                # nothing came: fall back to the byte path, which knows EAGAIN, EOF and marks
            try:
                chunk = src.recv(1 if urgent else min(amount, CHUNK), socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            if not chunk:
                # EOF behind an out-of-line urgent byte: Linux counts that byte in
                # FIONREAD but never returns it as data (3.5: it is not forwarded)
                eof = True
                break
            try:
                flags = socket.MSG_DONTWAIT | (socket.MSG_OOB if urgent else 0)
                sent = dst.send(chunk, flags | getattr(socket, "MSG_NOSIGNAL", 0))
            except BlockingIOError:
                link.waiting, max_reached = True, False
                break
            except OSError as e:
                src.recv(len(chunk), socket.MSG_DONTWAIT)  # the kernel loses it too
                err = self._send_failed(link, e)
                break
            src.recv(sent, socket.MSG_DONTWAIT)
            self.counters[link.sfd] += sent
            link.space_short, link.recheck_wait = False, SPACE_RECHECK
            self._hop_note_out(dst, hops.take(sent, datagram=False), link)
            if sent < len(chunk):
                link.waiting, max_reached = True, False
                break
            if max_reached and self.counters[link.sfd] >= link.max:
                break
        if self.links.get(link.sfd) is link:
            self._finish(link, err, max_reached, eof)

    def _send_failed(self, link: Link, e: OSError) -> int:
        """The errno a failed move into the drain ends the splice with."""
        dst = link.drain
        if e.errno in (errno.ECONNRESET, errno.EPIPE) and _tcp_state(dst) == _CLOSE:
            # Linux hands the reset to this send and clears it; BSD leaves it in so_error
            self.errors[link.dfd] = errno.ECONNRESET
        return errno.EPIPE if self._cant_send(dst) or e.errno == errno.EPIPE else (e.errno or errno.EIO)

    def _space(self, link: Link) -> int | None:
        """The drain's free send space as BSD counts it: SO_SNDBUF minus what is still queued (3.3 step 2)."""
        queued = _outq(link.drain)
        return None if queued is None else _sndbuf(link.drain) - queued

    def _wait_for_space(self, link: Link) -> None:
        """Stop until the drain has BSD send space again.

        Linux reports writability by its own accounting, so the drain's
        TCP_NOTSENT_LOWAT is set to make POLLOUT mean "SO_SNDLOWAT fits" (unsent
        bytes only: on loopback the rest is acknowledged at once). When a wakeup
        still finds no space, the drain is looked at again after SPACE_RECHECK, then
        ever later (up to SPACE_RECHECK_MAX) while no data moves.
        """
        if link.space_short:
            link.recheck = time.monotonic() + link.recheck_wait
            link.recheck_wait = min(2 * link.recheck_wait, SPACE_RECHECK_MAX)
        else:
            link.waiting = True
        link.space_short = True
        if _TCP_NOTSENT_LOWAT is None:
            return
        bsd = _sndbuf(link.drain)
        mark = 2 * (bsd - min(SNDLOWAT, bsd)) + 2  # Linux wakes when 2 * unsent < mark
        with contextlib.suppress(OSError):
            if link.notsent_saved is None:
                link.notsent_saved = link.drain.getsockopt(socket.IPPROTO_TCP, _TCP_NOTSENT_LOWAT)
            link.drain.setsockopt(socket.IPPROTO_TCP, _TCP_NOTSENT_LOWAT, mark)

    def _at_eof(self, link: Link) -> bool:
        try:
            return link.source.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError as e:
            self.errors[link.sfd] = e.errno or errno.EIO
            return True

    def _pass_datagram(self, link: Link) -> None:
        src, dst = link.source, link.drain
        link.waiting = False
        max_reached = False
        err = 0
        # what stays the same for every datagram of the pass, looked up once
        try:
            local: Addr | None = _addr(src.getsockname())
        except OSError:
            local = None
        sndbuf = _sndbuf(dst)
        broadcasts: dict[int, bytes | None] = {}
        out = self._out_key(dst, None)  # where the datagrams arrive, and whether that is ours
        ours = out is not None and any(self._link_key(other) in (out, (out[0], None))
                                       for other in self.links.values())
        while True:
            check = self._checks(link)
            if check is not None:
                err = check
                break
            try:
                data, anc, _flags, sender = src.recvmsg(1 << 16, _PKTINFO_SPACE, _PEEK_NOWAIT)
            except BlockingIOError:
                break
            except OSError as e:
                err = e.errno or errno.EIO
                break
            size = len(data)
            if link.max and size >= link.max - self.counters[link.sfd]:
                max_reached = True  # this datagram reaches max, or does not fit
            hops = self._hops_for(None if local is None else (local, _addr(sender)))
            if link.personality.eloop and (hops.first() >= M_MAXLOOP
                                         or _looped_broadcast(anc, sender, broadcasts)):
                err = errno.ELOOP
                break
            if size > sndbuf:
                err = errno.EMSGSIZE
                break
            if link.max and self.counters[link.sfd] + size > link.max:
                break
            try:
                dst.send(data, socket.MSG_DONTWAIT)
            except BlockingIOError:
                link.waiting, max_reached = True, False
                break
            except OSError as e:
                src.recv(1, socket.MSG_DONTWAIT)  # the kernel loses it too
                err = e.errno or errno.EIO
                break
            src.recv(1, socket.MSG_DONTWAIT)  # consumes the whole datagram
            self.counters[link.sfd] += size
            pieces = hops.take(size, datagram=True)
            if ours and out is not None:  # one hop further at the drain's peer (appendix A)
                self.hops.setdefault(out, _Hops()).ranges.extend([n, h + 1] for n, h in pieces)
            if max_reached and self.counters[link.sfd] == link.max:
                break
        if self.links.get(link.sfd) is link:
            self._finish(link, err, max_reached, eof=False)


class EmulatedSplicer:
    """SO_SPLICE semantics in user space, for any kernel (semantics appendix A)."""

    fast = True  # TCP moves by splice(2) through a pipe where the kernel has it

    def __init__(self, personality: Personality = OPENBSD) -> None:
        self.personality = personality
        self.engine = Engine.get()

    # ---- the option

    def setopt(self, source: socket.socket, value: bytes | int | None, optlen: int = 0) -> None:
        """Decode the option value the way sosetopt does, then splice."""
        p = self.personality
        size = struct.calcsize("=i4xqqq")
        if value is None:
            if optlen > MCLBYTES and p.option_bound:
                raise oserror("EINVAL", "option longer than MCLBYTES")
            if p.int_form:
                self._splice(source, -1, 0, None)
                return
            raise oserror("EFAULT" if optlen else "EINVAL", "NULL option value")
        if isinstance(value, int):
            if not p.int_form:
                raise oserror("EINVAL", "option shorter than struct splice")
            self._splice(source, value, 0, None)
            return
        if len(value) > MCLBYTES and p.option_bound:
            raise oserror("EINVAL", "option longer than MCLBYTES")
        if len(value) < 4:
            raise oserror("EINVAL", "option shorter than an int")
        if len(value) < size:
            if not p.int_form:
                raise oserror("EINVAL", "option shorter than struct splice")
            self._splice(source, struct.unpack("=i", value[:4])[0], 0, None)
            return
        fd, max, sec, usec = unpack_splice(value)
        self._splice(source, fd, max, (sec, usec))

    def splice(self, source: socket.socket, drain: socket.socket | int, max: int = 0,
               idle: float = 0.0) -> None:
        fd = drain if isinstance(drain, int) else drain.fileno()
        self._splice(source, fd, max, split_idle(idle) if idle else (0, 0))

    def unsplice(self, source: socket.socket) -> None:
        if self.engine.pid != os.getpid():
            self._unsplice_from_child(source)
            return
        self._splice(source, -1, 0, None)

    def _unsplice_from_child(self, source: socket.socket) -> None:
        """In a forked child: the parent's engine owns the splice, so ask it to unsplice.

        The socket itself travels (SCM_RIGHTS), so the parent finds the splice by
        the open file, not by a descriptor number; the answer comes back on a
        socket pair made for this request.
        """
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with mine:
            try:
                socket.send_fds(self.engine.ctl_child, [b"unsplice"], [source.fileno(), theirs.fileno()])
            finally:
                theirs.close()
            mine.settimeout(10.0)
            try:
                answer = mine.recv(64).decode()
            except TimeoutError:
                raise oserror("EIO", "the splicing process did not answer") from None
        if answer == "0":
            return
        if answer == "":
            raise oserror("EIO", "the splicing process is gone")
        if answer == "EPROTO":
            answer = self.personality.unsplice_unspliced
        raise oserror(answer)

    def _splice(self, source: socket.socket, fd: int, max: int, tv: tuple[int, int] | None) -> None:
        if source.fileno() < 0:
            raise oserror("EBADF")
        if self.personality.name == "freebsd":
            self._splice_freebsd(source, fd, max, tv)
        else:
            self._splice_openbsd(source, fd, max, tv)

    def _splice_openbsd(self, source: socket.socket, fd: int, max: int,
                        tv: tuple[int, int] | None) -> None:
        """sosplice() in the check order of semantics 2.1."""
        eng = self.engine
        if not _splicable(source):
            raise oserror("EPROTONOSUPPORT", "source protocol cannot splice")
        if max < 0:
            raise oserror("EINVAL", "negative max")
        sec, usec = tv or (0, 0)
        if sec < 0 or usec < 0 or usec >= 1_000_000:
            raise oserror("EINVAL", "invalid idle timeval")
        with eng.cond:
            if fd < 0:
                link = eng.links.get(eng.canon(source.fileno()))
                if link is None:
                    raise oserror("EPROTO", "socket is not spliced")
                eng.dissolve(link)
                return
            drain = self._drain(fd)
            try:
                if drain.type != source.type or not _splicable(drain):
                    raise oserror("EPROTONOSUPPORT", "drain protocol differs")
                if _listening(source) or _listening(drain):
                    raise oserror("EOPNOTSUPP", "listening socket")
                if _is_tcp(source) and not _connected(source):
                    raise oserror("ENOTCONN", "source not connected")
                if not _connected(drain):
                    raise oserror("ENOTCONN", "drain not connected")
                if eng.canon(source.fileno()) in eng.links or eng.canon(fd) in eng.drains:
                    raise oserror("EBUSY", "already spliced")
            except OSError:
                drain.detach()
                raise
            self._link(source, drain, max, sec + usec / 1e6)

    def _splice_freebsd(self, source: socket.socket, fd: int, max: int,
                        tv: tuple[int, int] | None) -> None:
        """so_splice() in the check order of semantics 5.1."""
        eng = self.engine
        sec, usec = tv or (0, 0)
        with eng.cond:
            if fd < 0:
                if _listening(source):
                    raise oserror("EINVAL", "listening socket")
                link = eng.links.get(eng.canon(source.fileno()))
                if link is None:
                    raise oserror("ENOTCONN", "socket is not spliced")
                eng.dissolve(link)
                return
            drain = self._drain(fd)
            try:
                if max < 0:
                    raise oserror("EINVAL", "negative max")
                for s in (source, drain):
                    if not (_splicable(s) and _is_tcp(s)):
                        raise oserror("EPROTONOSUPPORT", "FreeBSD splices TCP only")
                sfd = eng.canon(source.fileno())
                eng.counters[sfd] = 0  # reset before the state checks, even of a live splice (errata 11)
                if _listening(source):
                    raise oserror("EINVAL", "listening source")
                if not _connected(source):
                    raise oserror("ENOTCONN", "source not connected")
                if sfd in eng.links:
                    raise oserror("EBUSY", "source already spliced")
                if _listening(drain):
                    raise oserror("EINVAL", "listening drain")
                if not _connected(drain):
                    raise oserror("ENOTCONN", "drain not connected")
                if eng.canon(fd) in eng.drains:
                    raise oserror("EBUSY", "drain already spliced")
            except OSError:
                drain.detach()
                raise
            self._link(source, drain, max, max_idle(sec, usec))

    def _drain(self, fd: int) -> socket.socket:
        try:
            mode = os.fstat(fd).st_mode
        except OSError:
            raise oserror("EBADF", "drain descriptor not open") from None
        if not stat.S_ISSOCK(mode):
            raise oserror("ENOTSOCK", "drain is not a socket")
        return _borrow(fd)

    def _link(self, source: socket.socket, drain: socket.socket, max: int, idle: float) -> None:
        src = _borrow(source.fileno())
        try:
            oobinline = bool(src.getsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE)) if _is_tcp(src) else False
        except OSError:
            oobinline = False
        pktinfo_saved = None
        if not _is_tcp(src) and src.family == socket.AF_INET and _IP_PKTINFO is not None:
            # the header's destination, to refuse looped broadcasts (3.8)
            with contextlib.suppress(OSError):
                pktinfo_saved = src.getsockopt(socket.IPPROTO_IP, _IP_PKTINFO)
                src.setsockopt(socket.IPPROTO_IP, _IP_PKTINFO, 1)
        link = Link(source=src, drain=drain, max=max, idle=idle, tcp=_is_tcp(src),
                    oobinline=oobinline, personality=self.personality, pktinfo_saved=pktinfo_saved)
        if link.tcp and kpipe.AVAILABLE and self.fast:
            link.pipe = kpipe.KernelPipe()
        self.engine.link(link)

    # ---- reading the state (getsockopt SO_SPLICE, SO_ERROR), per socket (errata 7)

    def length(self, source: socket.socket) -> int:
        if self.personality.length_listening and _listening(source):
            raise oserror(self.personality.length_listening, "listening socket")
        eng = self.engine
        with eng.cond:
            return eng.counters.get(eng.canon(source.fileno()), 0)

    def error(self, sock: socket.socket) -> int:
        eng = self.engine
        with eng.cond:
            err = eng.errors.pop(eng.canon(sock.fileno()), 0)
        return err or _bsd_so_error(sock, sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))

    def spliced(self, sock: socket.socket) -> bool:
        eng = self.engine
        with eng.cond:
            return eng.canon(sock.fileno()) in eng.links

    # ---- the application's calls on spliced sockets (3.9): soreceive, sosend, poll

    def wait_readable(self, sock: socket.socket, timeout: float | None,
                      exceptional: bool = False) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        eng = self.engine
        if sock.fileno() < 0:
            raise oserror("EBADF", "socket closed")
        with eng.cond:
            while eng.canon(sock.fileno()) in eng.links:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                eng.cond.wait(left)
            if sock.fileno() < 0:
                raise oserror("EBADF", "socket closed while waiting")
            if eng.errors.get(eng.canon(sock.fileno())):
                return True
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        r, _, x = select.select([sock], [], [sock] if exceptional else [], left)
        return bool(r or x)

    def recv(self, sock: socket.socket, size: int, flags: int = 0) -> bytes:
        if flags & socket.MSG_OOB:
            return sock.recv(size, flags)
        eng = self.engine
        nonblocking = sock.gettimeout() == 0.0 or bool(flags & socket.MSG_DONTWAIT)
        with eng.cond:
            if self.personality.spliced_read_blocks and eng.canon(sock.fileno()) in eng.links:
                self._spliced_read(sock, size, flags, nonblocking)
                if eng.canon(sock.fileno()) in eng.links:
                    return b""
            fd = eng.canon(sock.fileno())
            err = eng.errors.get(fd, 0)
            if err:
                try:
                    with _nowait(sock) as s:
                        data = s.recv(size, flags | socket.MSG_DONTWAIT)
                    if data:
                        return data
                except BlockingIOError:
                    pass
                if not flags & socket.MSG_PEEK:
                    eng.errors.pop(fd, None)
                raise OSError(err, os.strerror(err))
        return sock.recv(size, flags)

    def _spliced_read(self, sock: socket.socket, size: int, flags: int, nonblocking: bool) -> None:
        """soreceive() on a spliced source, in the kernel's order (errata 3).

        Returns when the splice is gone (the caller reads), or with the splice still
        there when the read returns 0 (EOF with an empty buffer, a zero-length read).
        """
        eng = self.engine
        rcvtimeo = _rcvtimeo(sock)
        pytimeout = sock.gettimeout()
        wait = rcvtimeo or pytimeout
        deadline = time.monotonic() + wait if wait else None
        while (fd := eng.canon(sock.fileno())) in eng.links:
            err = eng.errors.get(fd, 0)
            if err:
                if not flags & socket.MSG_PEEK:
                    eng.errors.pop(fd, None)
                raise OSError(err, os.strerror(err))
            if _fionread(sock) == 0 and _peek_eof(sock):
                return
            if size == 0:
                return
            if nonblocking:
                raise BlockingIOError(errno.EAGAIN, os.strerror(errno.EAGAIN))
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                if rcvtimeo:
                    raise BlockingIOError(errno.EAGAIN, "SO_RCVTIMEO expired on a spliced source")
                raise TimeoutError("timed out")
            eng.cond.wait(left)

    def send(self, sock: socket.socket, data: bytes, flags: int = 0) -> int:
        eng = self.engine
        if eng.cant_send_more(sock):
            # errata 5: sosend tests SS_CANTSENDMORE before so_error, which stays pending
            raise oserror("EPIPE", "socket is shut for writing")
        with eng.cond:
            err = eng.errors.pop(eng.canon(sock.fileno()), 0)
        if err:
            raise OSError(err, os.strerror(err))
        if sock.type == socket.SOCK_DGRAM and len(data) > _sndbuf(sock):
            # BSD sosend(): an atomic send larger than the send buffer; Linux would take it
            raise oserror("EMSGSIZE", "datagram larger than the send buffer")
        nonblocking = sock.gettimeout() == 0.0 or bool(flags & socket.MSG_DONTWAIT)
        with eng.cond:
            if nonblocking or eng.canon(sock.fileno()) not in eng.drains:
                return sock.send(data, flags)
            try:
                with _nowait(sock) as s:
                    return s.send(data, flags | socket.MSG_DONTWAIT)
            except BlockingIOError:
                pass
            # errata 4: sowwakeup skips a splice drain; a blocked writer sleeps until the unsplice
            while eng.canon(sock.fileno()) in eng.drains:
                eng.cond.wait()
        return sock.send(data, flags)

    def shutdown(self, sock: socket.socket, how: int) -> None:
        eng = self.engine
        with eng.cond:
            sock.shutdown(how)
            fd = sock.fileno()
            if how in (socket.SHUT_WR, socket.SHUT_RDWR):
                ident = eng.ident(fd)
                if ident is not None:
                    eng.shut_wr.add(ident)
            if how in (socket.SHUT_RD, socket.SHUT_RDWR) and _is_tcp(sock):
                with _nowait(sock) as s:
                    self._flush(s)  # sorflush(): queued data is discarded
            fd = eng.canon(fd)
            for link in list(eng.links.values()):
                if fd in (link.sfd, link.dfd):
                    eng._pass(link)

    @staticmethod
    def _flush(sock: socket.socket) -> None:
        while True:
            try:
                if not sock.recv(CHUNK, socket.MSG_DONTWAIT):
                    return
            except OSError:
                return

    def close(self, sock: socket.socket) -> None:
        eng = self.engine
        with eng.cond:
            fd = sock.fileno()
            if fd >= 0:
                ident = eng.ident(fd)
                for link in list(eng.links.values()):
                    if fd in (link.sfd, link.dfd):
                        eng.dissolve(link)
                eng.counters.pop(fd, None)
                eng.errors.pop(fd, None)
                eng.forget_ident(fd)
                if ident is not None:
                    eng.shut_wr.discard(ident)
                for key in [k for k in eng.hops if _owned_by(sock, k)]:
                    del eng.hops[key]
            sock.close()


def _rcvtimeo(sock: socket.socket) -> float:
    """SO_RCVTIMEO in seconds, 0 for none."""
    try:
        sec, usec = struct.unpack("ll", sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16))
    except (OSError, struct.error):
        return 0.0
    return float(sec) + float(usec) / 1e6


def _peek_eof(sock: socket.socket) -> bool:
    try:
        with _nowait(sock) as s:
            return s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except OSError:
        return False


_IP_PKTINFO: int | None = getattr(socket, "IP_PKTINFO", 8 if sys.platform.startswith("linux") else None)
_SIOCGIFBRDADDR = 0x8919  # Linux


def _broadcast_of(ifindex: int) -> bytes | None:
    """The IPv4 broadcast address of an interface (Linux), if it has one."""
    try:
        name = socket.if_indextoname(ifindex)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            req = fcntl.ioctl(s.fileno(), _SIOCGIFBRDADDR, struct.pack("16s16x", name.encode()))
    except OSError:
        return None
    return req[20:24]


def _is_local(host: str) -> bool:
    """The address belongs to this host: a socket can be bound to it."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((host, 0))
    except OSError:
        return False
    return True


def _looped_broadcast(anc: list[tuple[int, int, bytes]], sender: object,
                      broadcasts: dict[int, bytes | None]) -> bool:
    """A broadcast or multicast datagram that this host sent to itself (semantics 3.8).

    IP_PKTINFO (Linux: int ifindex, in_addr spec_dst, in_addr addr) gives the header's
    destination; a sender address of this host means it came back over loopback.
    `broadcasts` keeps the interfaces' broadcast addresses for the caller (one pass).
    """
    for level, kind, data in anc:
        if level != socket.IPPROTO_IP or kind != _IP_PKTINFO or len(data) < 12:
            continue
        ifindex = struct.unpack("=i", data[:4])[0]
        dst = data[8:12]
        if ifindex not in broadcasts:
            broadcasts[ifindex] = _broadcast_of(ifindex)
        cast = dst == b"\xff\xff\xff\xff" or 224 <= dst[0] <= 239 or dst == broadcasts[ifindex]
        peer = _addr(sender)
        return cast and peer is not None and _is_local(peer[0])
    return False


def _owned_by(sock: socket.socket, key: tuple[Addr, Addr | None]) -> bool:
    try:
        local = _addr(sock.getsockname())
    except OSError:
        return False
    try:
        peer = _addr(sock.getpeername())
    except OSError:
        peer = None
    return key in ((local, peer), (local, None))


class ByteCopySplicer(EmulatedSplicer):
    """The emulation without the splice(2) fast path: every byte peeked, sent and consumed.

    --splice-backend harness.splice.emulated:ByteCopySplicer runs the cases on this path.
    """

    fast = False


def max_idle(sec: int, usec: int) -> float:
    """FreeBSD does not validate sp_idle; a negative one means none."""
    value = sec + usec / 1e6
    return value if value > 0 else 0.0

