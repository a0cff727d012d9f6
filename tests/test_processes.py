"""The helpers that start real processes for the tests (tests/processes.py)."""

from __future__ import annotations

import socket

from tests.processes import free_port


def test_free_port_never_hands_out_a_port_twice() -> None:
    """A probe's port is free again once it closes, and the kernel hands it out again
    (2,000 bare probes here: 142 ports came twice, once two in a row, and a Janus under
    test found its admin port taken by its own API)."""
    tcp = [free_port() for _ in range(500)]
    udp = [free_port(socket.SOCK_DGRAM) for _ in range(100)]
    assert len(set(tcp + udp)) == 600
    # Each still free to bind (UDP ones for TCP too: coturn listens on both).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", udp[-1]))
