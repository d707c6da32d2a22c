"""A user-space splice engine with OpenBSD (or FreeBSD) semantics.

Follows spec/semantics.md appendix A: data that has not been moved stays in
the source's kernel receive buffer (peek, send, then consume what the drain
took), so unsplicing never has to give bytes back. One engine thread per
process runs the asynchronous move passes; the initial pass runs inside
setsockopt, as the kernel's does. Pending errors are kept per socket and handed
out the way so_error is.

The modules follow the kernel's functions, to be read beside uipc_socket.c:

    sosplice.py       sosetopt(SO_SPLICE) decoding, sosplice() checks in order, the link
    somove.py         one pass: state checks (3.3 step 1), its end (step 12)
    somove_stream.py  the TCP pass: space, max, urgent data, EOF
    somove_dgram.py   the UDP pass: whole datagrams, EMSGSIZE
    sounsplice.py     sounsplice(), soidle(), options put back
    idle.py           the idle timer and the wakeups that re-arm it
    loop.py           ELOOP: hop counts and looped broadcasts
    calls.py          soreceive, sosend, poll, shutdown, close on spliced sockets
    engine.py         the per-process state and the thread standing in for wakeups
    fork.py           a forked child's calls, answered by the splicing process
    probe.py          what Linux tells about a socket, in BSD's terms
    link.py           struct sosplice

Stdlib only: this package travels to the remote host with the agent.
"""

from .engine import Engine
from .link import Link
from .sosplice import max_idle
from .splicer import ByteCopySplicer, EmulatedSplicer

__all__ = ["ByteCopySplicer", "EmulatedSplicer", "Engine", "Link", "max_idle"]
