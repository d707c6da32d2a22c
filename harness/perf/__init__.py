"""Throughput of direct, copy-relayed and spliced paths on loopback: `python -m harness.perf`."""
