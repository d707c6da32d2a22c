"""somove(): one move pass, its state checks (3.3 step 1) and its end (step 12).

The byte moving itself is per protocol: somove_stream.py for TCP,
somove_dgram.py for UDP.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from . import idle, probe, somove_dgram, somove_stream, sounsplice
from .link import Link

if TYPE_CHECKING:
    from .engine import Engine

# A drain's own splice may have ended with these; they do not stop its source (3.3 1.3).
IGNORED_DRAIN_ERRORS = {errno.ETIMEDOUT, errno.EFBIG, errno.ELOOP}


def somove(eng: Engine, link: Link) -> None:
    """One pass, for the protocol of the link."""
    try:
        if link.tcp:
            somove_stream.move(eng, link)
        else:
            somove_dgram.move(eng, link)
    except OSError as e:
        # A descriptor closed or reset under us: end the splice the way the kernel would.
        sounsplice.sounsplice(eng, link, 0 if e.errno == errno.EBADF else (e.errno or errno.EIO))


def checks(eng: Engine, link: Link) -> int | None:
    """Step 1: an errno to end with, 0 to stop and wait for the drain, None to go on."""
    err = eng.pending_error(link.source)
    if err:
        return err
    state = probe.tcp_state(link.drain) if link.tcp else None
    if state is not None and state not in probe.CAN_SEND and state not in probe.CONNECTING:
        # the drain cannot send any more; FreeBSD ends the splice without an error when the
        # drain was shut for writing (errata 11), with EPIPE when it was reset or closed
        quiet = not link.personality.drain_shut_epipe and eng.cant_send_more(link.drain)
        return 0 if quiet else errno.EPIPE
    if not link.tcp and eng.cant_send_more(link.drain):
        return errno.EPIPE  # errata 6: a UDP drain shut for writing ends the splice at once
    derr = eng.errors.get(link.dfd) or eng.pending_error(link.drain)
    if derr and derr not in IGNORED_DRAIN_ERRORS:
        return derr
    if state in probe.CONNECTING:
        link.waiting = True
        return 0
    return None


def finish(eng: Engine, link: Link, err: int, max_reached: bool, eof: bool) -> None:
    """Step 12: EFBIG at an exact max, dissolve, or re-arm the idle timer and wait."""
    if not eng.live(link):
        return
    counter = eng.counters[link.sfd]
    if not err and max_reached and counter == link.max and link.personality.efbig:
        err = errno.EFBIG
    if err or max_reached or eof or probe.cant_send(link.drain):
        sounsplice.sounsplice(eng, link, err)
        return
    by_recheck, link.by_recheck = link.by_recheck, False
    idle.rearm(eng, link, counter, by_recheck)
    eng.sync(link.sfd, link.dfd)
