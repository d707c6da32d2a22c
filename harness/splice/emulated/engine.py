"""The per-process splice engine: its state, and the thread that stands in for the kernel's wakeups.

The kernel runs somove() from sorwakeup() of the source and sowwakeup() of the
drain, and from the idle timeout. Here one thread per process polls the spliced
sockets and runs the pass (somove.py), the idle timer (idle.py) and the engine's
own rechecks of drain space; every call of the application takes the same lock.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import time

from . import fork, idle, mmsg, probe, somove, sounsplice
from .link import Link
from .loop import Hops, Key

FINE_WAIT = 0.002  # waits shorter than this are timed by select(2), not poll(2)
Ident = tuple[int, int]  # (st_dev, st_ino): one open socket, whatever descriptor names it


class Engine:
    """Links, counters, pending errors, one mover thread."""

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
        self.links: dict[int, Link] = {}  # source fd -> its splice (so_sp->ssp_socket)
        self.drains: dict[int, int] = {}  # drain fd -> source fd (so_sp->ssp_soback)
        self.counters: dict[int, int] = {}  # ssp_len, kept after the splice ends
        self.errors: dict[int, int] = {}  # so_error as BSD holds it
        self.hops: dict[Key, Hops] = {}
        # a splice belongs to the socket (errata 7): another descriptor of the same open
        # socket (dup, SCM_RIGHTS, fork) is mapped to the descriptor the engine knows it by
        self.idents: dict[Ident, int] = {}
        self.shut_wr: set[Ident] = set()  # sockets shut for writing (SS_CANTSENDMORE)
        self.waiters: dict[Ident, list[int]] = {}  # forked children's reads waiting for the unsplice
        self._batch: mmsg.Batch | None = None  # UDP passes' buffers, made at the first
        self.spoiled_sockets: set[Ident] = set()  # UDP sources peeked one datagram at a time (mmsg.py)
        self.poller = select.poll()
        self.registered: dict[int, int] = {}
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.poller.register(self.wake_r, select.POLLIN)
        self.ctl, self.ctl_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.poller.register(self.ctl.fileno(), select.POLLIN)
        self.thread = threading.Thread(target=self._run, name="sosplice", daemon=True)
        self.thread.start()

    # ---- the mover thread

    def wake(self) -> None:
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
                    with contextlib.suppress(BlockingIOError):
                        while os.read(self.wake_r, 4096):
                            pass
                elif fd == self.ctl.fileno():
                    fork.serve(self)
                elif ev & select.POLLNVAL:
                    self.forget_fd(fd)
                else:
                    for link in list(self.links.values()):
                        if fd in (link.sfd, link.dfd) and self.live(link):
                            somove.somove(self, link)
            now = time.monotonic()
            for link in list(self.links.values()):
                if link.sample_at is not None and link.sample_at <= now:
                    idle.sample(self, link)
                    if not self.live(link):
                        continue
                if link.deadline is not None and link.deadline <= now:
                    sounsplice.soidle(self, link)
                elif link.recheck is not None and link.recheck <= now and self.live(link):
                    link.recheck = None
                    link.by_recheck = True
                    somove.somove(self, link)

    def sync(self, *fds: int) -> None:
        """Poll each descriptor for what its splices wait for: data, drain space, the peer's FIN."""
        for fd in fds:
            mask = 0
            interested = False
            for link in self.links.values():
                if link.sfd == fd:
                    interested = True
                    if not link.waiting and link.recheck is None:
                        mask |= select.POLLIN
                    elif link.watch_eof:
                        mask |= probe.POLLRDHUP
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
        self.wake()

    def live(self, link: Link) -> bool:
        """The link is still the splice of its source (not dissolved during this pass)."""
        return self.links.get(link.sfd) is link

    # ---- sockets, not descriptor numbers (errata 7)

    @staticmethod
    def ident(fd: int) -> Ident | None:
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

    def batch(self) -> mmsg.Batch:
        if self._batch is None:
            self._batch = mmsg.Batch()
        return self._batch

    def spoiled(self, s: socket.socket) -> bool:
        return bool(self.spoiled_sockets) and self.ident(s.fileno()) in self.spoiled_sockets

    def spoil(self, s: socket.socket) -> None:
        ident = self.ident(s.fileno())
        if ident is not None:
            self.spoiled_sockets.add(ident)

    def cant_send_more(self, s: socket.socket) -> bool:
        """SS_CANTSENDMORE: shut for writing (Linux shows it for TCP by state, UDP not at all)."""
        ident = self.ident(s.fileno())
        return ident is not None and ident in self.shut_wr

    def pending_error(self, s: socket.socket) -> int:
        """so_error of a socket; the engine keeps it once read, as BSD keeps it until handed out."""
        fd = s.fileno()
        if self.errors.get(fd):
            return self.errors[fd]
        err = probe.so_error(s)
        if err:
            self.errors[fd] = err
        return err

    # ---- linking, and descriptors closed behind the engine's back

    def link(self, link: Link) -> None:
        """The end of sosplice(): the splice is in place, the first pass runs at once (3.2)."""
        sfd, dfd = link.sfd, link.dfd
        self.links[sfd] = link
        self.drains[dfd] = sfd
        self.counters[sfd] = 0
        self.remember(sfd)
        self.remember(dfd)
        idle.start(link)
        somove.somove(self, link)
        if self.live(link):
            self.sync(sfd, dfd)

    def forget_fd(self, fd: int) -> None:
        """The descriptor was closed behind our back: end what used it."""
        for link in list(self.links.values()):
            if fd in (link.sfd, link.dfd):
                sounsplice.sounsplice(self, link)
        self.counters.pop(fd, None)
        self.errors.pop(fd, None)
        self.forget_ident(fd)
        self.sync(fd)
