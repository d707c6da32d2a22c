"""One splice: struct sosplice of the source (ssp_socket, ssp_max, ssp_idletv) and the engine's marks."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from .. import kpipe
from ..api import Personality
from .probe import Addr

# seconds until a drain short of BSD send space is looked at again (acknowledgements raise
# no event): the first recheck soon, each further one without progress twice as late
SPACE_RECHECK = 0.0002
SPACE_RECHECK_MAX = 0.002


@dataclass
class Link:
    source: socket.socket
    drain: socket.socket
    max: int  # ssp_max, 0 for none
    idle: float  # ssp_idletv in seconds, 0 for none
    tcp: bool
    oobinline: bool
    personality: Personality
    deadline: float | None = None  # when the idle timer fires (ssp_idleto)
    waiting: bool = False  # waiting for the drain to become writable (full, or connecting)
    watch_eof: bool = False  # drain connecting, source empty: its EOF still ends the splice (errata 1)
    space_short: bool = False  # the last pass stopped for lack of BSD send space in the drain
    recheck_wait: float = SPACE_RECHECK  # the next recheck's delay (doubles while nothing moves)
    recheck: float | None = None  # when to look at the drain again (space not reported by poll)
    by_recheck: bool = False  # this pass is the engine's own look at the drain, not a wakeup
    sample_at: float | None = None  # when to look for wakeups poll does not report (errata 2)
    seen: tuple[int, int] = (0, 0)  # the source's queue and the drain's unacknowledged bytes then
    seen_counter: int = 0  # the counter at the last re-arm
    notsent_saved: int | None = None  # the drain's TCP_NOTSENT_LOWAT before the splice (errata 8)
    pktinfo_saved: int | None = None  # the source's IP_PKTINFO before the splice (errata 8)
    peekoff_saved: int | None = None  # the source's own SO_PEEK_OFF, off while the pass peeks
    pipe: kpipe.KernelPipe | None = None  # the splice(2) fast path, TCP only
    # hop keys, kept once known for TCP (a connected socket's addresses do not change)
    src_key: tuple[Addr, Addr | None] | None = None  # (source's local, source's peer)
    out_key: tuple[Addr, Addr] | None = None  # (drain's peer, drain's local)
    gso_for: tuple[Addr, bool] | None = None  # UDP: the drain's peer, and whether it is on this host

    @property
    def sfd(self) -> int:
        return self.source.fileno()

    @property
    def dfd(self) -> int:
        return self.drain.fileno()
