"""The emulation's fast TCP data path: Linux splice(2) through a pipe, no bytes in Python.

The engine decides how much to move (max, BSD drain space, no urgent mark
ahead); this module moves exactly that much from the source's receive queue
into the drain's send queue through a private pipe, and leaves nothing behind
in the pipe: the amount is also bounded by the room Linux's own accounting
gives the drain (SO_MEMINFO), and should the drain still take less, the pipe
is flushed by waiting for the drain to become writable.

Stdlib only: this module travels to the remote host with the agent.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import socket
import struct

AVAILABLE = hasattr(os, "splice") and hasattr(fcntl, "F_SETPIPE_SZ")
PIPE_SIZE = 1 << 20  # Linux's default pipe-max-size
_SO_MEMINFO = 55  # Linux: u32[9], [3] sndbuf, [5] wmem_queued
_MEMINFO = struct.Struct("9I")
# A send into a drain that Linux said had room never waits longer than this (per step).
FLUSH_WAIT_MS = 1000


def linux_send_room(s: socket.socket) -> int | None:
    """Half the room Linux's accounting leaves in the send buffer (half: per-skb overhead)."""
    try:
        info = _MEMINFO.unpack(s.getsockopt(socket.SOL_SOCKET, _SO_MEMINFO, _MEMINFO.size))
    except (OSError, struct.error):
        return None
    return max(0, (int(info[3]) - int(info[5])) // 2)


class KernelPipe:
    """One pipe per spliced TCP source: the in-kernel bucket between the two sockets."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        try:
            self.size = fcntl.fcntl(self.w, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            self.size = fcntl.fcntl(self.w, fcntl.F_GETPIPE_SZ)

    def move(self, source: socket.socket, drain: socket.socket, amount: int) -> int:
        """Move up to `amount` bytes; 0 when the kernel had nothing to give (EAGAIN).

        An error of the drain is raised after the bytes in the pipe are
        discarded (they are lost, as a failed send loses them in the kernel).
        """
        room = linux_send_room(drain)
        if room is not None:
            amount = min(amount, room)
        amount = min(amount, self.size)
        if amount <= 0:
            return 0
        try:
            n = os.splice(source.fileno(), self.w, amount, flags=os.SPLICE_F_NONBLOCK | os.SPLICE_F_MOVE)
        except BlockingIOError:
            return 0
        try:
            self._flush(drain, n)
        except OSError:
            self._discard()
            raise
        return n

    def _flush(self, drain: socket.socket, left: int) -> None:
        poller: select.poll | None = None
        while left:
            try:
                left -= os.splice(self.r, drain.fileno(), left, flags=os.SPLICE_F_MOVE)
                continue
            except BlockingIOError:
                pass
            if poller is None:
                poller = select.poll()
                poller.register(drain.fileno(), select.POLLOUT)
            if not poller.poll(FLUSH_WAIT_MS):
                raise TimeoutError(f"drain took no data for {FLUSH_WAIT_MS} ms after Linux said it had room")

    def _discard(self) -> None:
        os.set_blocking(self.r, False)
        with contextlib.suppress(BlockingIOError):
            while os.read(self.r, self.size):
                pass
        os.set_blocking(self.r, True)

    def close(self) -> None:
        for fd in (self.r, self.w):
            with contextlib.suppress(OSError):
                os.close(fd)
