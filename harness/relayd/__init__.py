"""harness.relayd: a relay daemon for the relayd cases, on the Splicer, in copy or splice mode.

    python -m harness.relayd -f relayd.conf [-n] [--json]
        [--splice-backend emulated|native|module:Class] [--splice-personality openbsd|freebsd]
        [--time-scale FACTOR]

It listens where the relay block says (port 0: the kernel picks one; the port is
logged as `relay_launch: ... listening on ADDR port N` and, with --json, emitted
as a `listening` event), and relays every accepted connection to `forward to`.
`-n` only checks the configuration. SIGTERM ends it with `parent terminating`.

Supported relayd.conf subset (anything else is a one-line error naming the
line, exit status 1):

    log connection | log state changes | log host checks | log all
    prefork N                                  (accepted, one process is used)
    [http] protocol NAME {
        tcp splice | tcp no splice             (splice mode / copy mode)
        tcp nodelay | tcp socket buffer N      (TCP_NODELAY; SO_SNDBUF and SO_RCVBUF)
        return error                           (blocked requests get a 403 page)
        (match|block|pass) [quick] [request|response]
            [header|path|url|cookie|query] [log] [KEY] [value VALUE]
    }
    relay NAME {
        listen on ADDRESS port PORT
        forward to ADDRESS port PORT
        protocol NAME
        session timeout SECONDS
    }

What it does, after relayd (spec/relayd-cases.md section 3):

- TCP protocol: connects to the server at once; each direction is spliced
  without maximum (splice mode) or copied, until EOF closes the session (`done`).
- http protocol: heads are parsed in userland (CRLF or bare LF), filter rules run
  (match rules log, the last matching block/pass decides; block closes with
  `Forbidden`), the head is written on, and the body follows: a Content-Length
  body is spliced with max = its length and EFBIG returns the direction to head
  parsing (persistent connections); chunk-size lines, chunk ends and trailers
  are parsed here and only chunk data is spliced; a body without length is
  relayed until close and the head gets `Connection: close`; a HEAD reply has no
  body; GET/HEAD request bodies are not relayed. The server is connected after
  the first request head without a pending body, or once a Content-Length
  request body read before the connect is complete and no more input waits.
- Timeouts (`session timeout`, default 600 s, times --time-scale): a splice gets
  it as its idle time; on ETIMEDOUT the session closes (`splice timeout`) if the
  other direction made no progress, else the direction is spliced again; an
  unspliced direction idle for that long closes the session (`buffer event
  timeout`) unless the other direction moved.
- At close it logs relayd's session line (`relay NAME, session N (M active), 0,
  CLIENT -> SERVER:PORT, REASON[, HTTP LOG]`) and `session N spliced request R
  response S`, the bytes each direction moved by splicing (a `session` event
  with --json).

Copy mode writes with blocking sends, so a slow reader stops the daemon from
reading the other side (back-pressure) instead of buffering.
"""
