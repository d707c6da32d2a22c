"""Medians and spread of repeated runs, as a table, JSON, or a PNG bar chart."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

from .measure import Sample


@dataclass(frozen=True)
class Summary:
    proto: str
    path: str
    runs: int
    gbps: float  # median
    gbps_min: float
    gbps_max: float
    dgrams_per_s: float
    cpu_s_per_gb: float

    @classmethod
    def of(cls, proto: str, path: str, samples: list[Sample]) -> Summary:
        rates = [s.gbps for s in samples]
        return cls(proto=proto, path=path, runs=len(samples), gbps=statistics.median(rates),
                   gbps_min=min(rates), gbps_max=max(rates),
                   dgrams_per_s=statistics.median(s.dgrams_per_s for s in samples),
                   cpu_s_per_gb=statistics.median(s.cpu_s_per_gb for s in samples))


NOT_RELAYS = ("direct", "iperf3")
LIMIT_RULE = ("limit: a relay on the host of its client and server carries two connections' work "
              "on the same cores, so it can reach half the direct rate at most")


def rate(r: Summary) -> float:
    """What a path is measured by: datagrams/s for UDP (their size is fixed), Gbit/s for TCP."""
    return r.dgrams_per_s if r.proto == "udp" else r.gbps


def limits(rows: list[Summary], meta: dict[str, object] | None) -> dict[str, float]:
    """Per protocol, the most a relay can carry here: half the direct rate of the same run.

    Only for relays on this host; a relay on an ssh target has cores of its own, and no limit
    is claimed for it."""
    if meta and meta.get("target", "local") != "local":
        return {}
    return {r.proto: rate(r) / 2 for r in rows if r.path == "direct" and rate(r) > 0}


def shares(rows: list[Summary], meta: dict[str, object] | None) -> dict[tuple[str, str], float]:
    """Each relay row's share of its protocol's limit."""
    lim = limits(rows, meta)
    return {(r.proto, r.path): rate(r) / lim[r.proto] for r in rows
            if r.path not in NOT_RELAYS and r.proto in lim}


def factors(rows: list[Summary]) -> dict[str, dict[str, float]]:
    """splice/copy and splice/direct per protocol, from the medians."""
    out: dict[str, dict[str, float]] = {}
    for proto in sorted({r.proto for r in rows}):
        by = {r.path: r.gbps for r in rows if r.proto == proto}
        f: dict[str, float] = {}
        if by.get("copy") and "splice" in by:
            f["splice/copy"] = by["splice"] / by["copy"]
        if by.get("direct") and "splice" in by:
            f["splice/direct"] = by["splice"] / by["direct"]
        if by.get("copy") and "socat" in by:
            f["copy/socat"] = by["copy"] / by["socat"]
        if by.get("haproxy") and "splice" in by:
            f["splice/haproxy"] = by["splice"] / by["haproxy"]
        if by.get("iperf3") and "direct" in by:
            f["direct/iperf3"] = by["direct"] / by["iperf3"]
        out[proto] = f
    return out


def table(rows: list[Summary], meta: dict[str, object] | None = None) -> str:
    lines = []
    if meta:
        buf = meta.get("sockbuf")
        bufs = f"SO_RCVBUF/SO_SNDBUF {buf} in every relay" if buf else "the kernel's socket buffers"
        lines.append(f"# {meta.get('repeat')} runs of {meta.get('seconds')} s per path, {bufs}, "
                     f"splice backend {meta.get('backend')}")
        if meta.get("target", "local") != "local":
            lines.append(f"# relays on {meta['target']}")
    share = shares(rows, meta)
    lines += [f"{'proto':5} {'path':8} {'runs':>4} {'Gbit/s':>8} {'min-max':>13} {'dgram/s':>10} {'CPU s/GB':>9} "
              f"{'of limit':>8}"]
    for r in rows:
        dg = f"{r.dgrams_per_s:10.0f}" if r.proto == "udp" else f"{'-':>10}"
        of = f"{share[(r.proto, r.path)]:8.2f}" if (r.proto, r.path) in share else f"{'-':>8}"
        lines.append(f"{r.proto:5} {r.path:8} {r.runs:4d} {r.gbps:8.2f} {r.gbps_min:6.2f}-{r.gbps_max:<6.2f} "
                     f"{dg} {r.cpu_s_per_gb:9.2f} {of}")
    for proto, fs in factors(rows).items():
        if fs:
            lines.append(f"{proto}: " + ", ".join(f"{k} {v:.2f}x" for k, v in fs.items()))
    lim = limits(rows, meta)
    if lim:
        each = ", ".join(f"{p} {v:.2f} Gbit/s" if p == "tcp" else f"{p} {v:.0f} dgram/s" for p, v in lim.items())
        lines.append(f"{LIMIT_RULE}: {each}")
    return "\n".join(lines)


def to_json(rows: list[Summary], meta: dict[str, object]) -> str:
    share = shares(rows, meta)
    results = [{**asdict(r), "share_of_limit": share.get((r.proto, r.path))} for r in rows]
    return json.dumps({"meta": meta, "results": results, "factors": factors(rows),
                       "limits": limits(rows, meta), "limit_rule": LIMIT_RULE}, indent=2)


def chart(rows: list[Summary], path: Path) -> bool:
    """A bar chart of the medians with min-max whiskers; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    protos = sorted({r.proto for r in rows})
    fig, axes = plt.subplots(1, len(protos), figsize=(5 * len(protos), 4), squeeze=False)
    for ax, proto in zip(axes[0], protos, strict=True):
        mine = [r for r in rows if r.proto == proto]
        ax.bar([r.path for r in mine], [r.gbps for r in mine],
               yerr=[[r.gbps - r.gbps_min for r in mine], [r.gbps_max - r.gbps for r in mine]], capsize=4)
        ax.set_title(f"{proto} on loopback")
        ax.set_ylabel("Gbit/s (median, min-max)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True
