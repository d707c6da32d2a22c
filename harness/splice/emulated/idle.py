"""The idle timer (ssp_idleto, 3.7) and the wakeups that re-arm it (errata 2).

OpenBSD re-arms the timer in every somove() pass, and a pass runs on every
sorwakeup() of the source and sowwakeup() of the drain, also when nothing can
move. Linux's poll reports neither a receive into a source the engine does not
read (it is already readable) nor an acknowledgement into a full drain, so
while a splice waits the engine samples the source's queue and the drain's
unacknowledged bytes IDLE_SAMPLES times per idle time: a change is a wakeup.
FreeBSD's timer is one-shot from the splice (5.1).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from . import probe, somove
from .link import Link

if TYPE_CHECKING:
    from .engine import Engine

IDLE_SAMPLES = 8  # looks per idle time for wakeups poll does not report


def start(link: Link) -> None:
    """At the splice: FreeBSD's one-shot timer starts; OpenBSD's is armed by the first pass."""
    if not link.personality.idle_restarts and link.idle:
        link.deadline = time.monotonic() + link.idle


def rearm(eng: Engine, link: Link, counter: int, by_recheck: bool) -> None:
    """The end of a pass that did not dissolve: timeout_add(&ssp_idleto) (3.7, errata 2)."""
    if not (link.idle and link.personality.idle_restarts):
        return
    if by_recheck and counter == link.seen_counter and not woken(link, marks(link)):
        return  # the engine's own look at the drain, not a kernel wakeup: the timer runs on
    now = time.monotonic()
    link.seen_counter = counter
    link.deadline = now + link.idle
    link.seen = marks(link)
    link.sample_at = now + link.idle / IDLE_SAMPLES


def marks(link: Link) -> tuple[int, int]:
    """(bytes queued on the source, bytes unacknowledged on the drain): a change is a wakeup."""
    try:
        return probe.fionread(link.source), probe.outq(link.drain) or 0
    except OSError:
        return (-1, -1)


def woken(link: Link, now_marks: tuple[int, int]) -> bool:
    """A receive on the source (its queue grew) or an acknowledgement on the drain (fewer unacknowledged)."""
    return now_marks[0] > link.seen[0] or now_marks[1] < link.seen[1]


def sample(eng: Engine, link: Link) -> None:
    """sorwakeup/sowwakeup that poll does not show: a pass if either side changed."""
    link.sample_at = time.monotonic() + link.idle / IDLE_SAMPLES
    now_marks = marks(link)
    if woken(link, now_marks):
        somove.somove(eng, link)
    else:
        link.seen = now_marks
