"""sounsplice() and soidle(): the end of a splice, by request, by an error or by the idle timer."""

from __future__ import annotations

import contextlib
import errno
import socket
from typing import TYPE_CHECKING

from . import fork, mmsg, probe
from .link import Link

if TYPE_CHECKING:
    from .engine import Engine


def sounsplice(eng: Engine, link: Link, error: int = 0) -> None:
    """Dissolve the splice; an error is left in the source's so_error (3.6)."""
    sfd, dfd = link.sfd, link.dfd
    if not eng.live(link):
        return
    del eng.links[sfd]
    eng.drains.pop(dfd, None)
    if error:
        eng.errors[sfd] = error
    link.deadline = link.recheck = link.sample_at = None  # timeout_del(&ssp_idleto)
    if link.pipe is not None:
        link.pipe.close()
        link.pipe = None
    restore_options(link)
    link.source.detach()
    link.drain.detach()
    eng.sync(sfd, dfd)
    eng.cond.notify_all()  # sorwakeup/sowwakeup of readers and writers that waited for it
    fork.answer_waiters(eng, sfd)  # and of those in forked children


def restore_options(link: Link) -> None:
    """Errata 8: the options the engine set for its own needs are put back."""
    if link.notsent_saved is not None and probe.TCP_NOTSENT_LOWAT is not None:
        with contextlib.suppress(OSError):
            link.drain.setsockopt(socket.IPPROTO_TCP, probe.TCP_NOTSENT_LOWAT, link.notsent_saved)
    if link.pktinfo_saved is not None and probe.IP_PKTINFO is not None:
        with contextlib.suppress(OSError):
            link.source.setsockopt(socket.IPPROTO_IP, probe.IP_PKTINFO, link.pktinfo_saved)
    if link.peekoff_saved is not None:
        with contextlib.suppress(OSError):
            link.source.setsockopt(socket.SOL_SOCKET, mmsg.SO_PEEK_OFF, link.peekoff_saved)


def soidle(eng: Engine, link: Link) -> None:
    """The idle timer fired: ETIMEDOUT on OpenBSD, a quiet end on FreeBSD (3.7, 5.1)."""
    sounsplice(eng, link, errno.ETIMEDOUT if link.personality.etimedout else 0)
