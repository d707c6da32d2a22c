"""Packet-level checks: network namespaces, veth links, a scapy peer and segment matchers.

Not part of the agent: this package runs only in the controller (pytest) on Linux as root,
and may import scapy. The relay role itself still runs `python -m harness.agent`, inside a
namespace that the test created (see `netns.Topology`).
"""
