"""Debian's coturn (``/usr/bin/turnserver``) for the tests: a real TURN server on loopback.

It runs with the TURN REST API scheme (``use-auth-secret``) that ``/rtc/ice-servers``
issues credentials for, listens and relays on 127.0.0.1 only, without TLS, a
configuration file, a CLI or the system's user database. coturn refuses loopback
peers by default (a relay to 127.0.0.1 would reach the TURN host's own services);
inside the tests' loopback-only namespace that is the only address there is, so
they are allowed explicitly.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.processes import free_port, log_tail, stop_process

TURNSERVER = Path("/usr/bin/turnserver")
REALM = "videochat.test"


def available() -> bool:
    return TURNSERVER.exists() or shutil.which("turnserver") is not None


def free_udp_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (coturn listens on both)."""
    return free_port(socket.SOCK_DGRAM)


class Coturn:
    """One turnserver process; ``start()`` waits until it answers a STUN Binding."""

    def __init__(self, workdir: Path, secret: str, port: int) -> None:
        self.workdir = workdir
        self.secret = secret
        self.port = port
        self.log_path = workdir / "turnserver.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=udp"

    def command(self) -> list[str]:
        binary = str(TURNSERVER) if TURNSERVER.exists() else "turnserver"
        return [
            binary,
            "-n",  # no configuration file: everything is on this command line
            "--no-cli",
            "--use-auth-secret",
            f"--static-auth-secret={self.secret}",
            f"--realm={REALM}",
            "--listening-ip=127.0.0.1",
            f"--listening-port={self.port}",
            "--relay-ip=127.0.0.1",
            "--no-tls",
            "--no-dtls",
            # Loopback peers are denied unless allowed (and 4.6 wants both switches).
            "--allow-loopback-peers",
            "--allowed-peer-ip=127.0.0.1",
            "--fingerprint",
            # Our own (empty) user database and pid file, not /var/lib/turn or /var/run.
            f"--userdb={self.workdir / 'turndb'}",
            f"--pidfile={self.workdir / 'turnserver.pid'}",
            f"--log-file={self.log_path}",
            "--simple-log",
            "--no-stdout-log",
        ]

    def start(self, timeout: float = 15.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while not self._answers_binding():
            if self._process.poll() is not None:
                raise RuntimeError(f"turnserver exited: {self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"turnserver did not answer: {self.log()}")
            time.sleep(0.1)

    def _answers_binding(self) -> bool:
        # A bare STUN Binding request (RFC 8489): type 0x0001, length 0, magic cookie.
        request = b"\x00\x01\x00\x00\x21\x12\xa4\x42" + b"\x07" * 12
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.settimeout(0.3)
            try:
                probe.sendto(request, ("127.0.0.1", self.port))
                answer = probe.recv(2048)
            except OSError:
                return False
        return answer[:2] == b"\x01\x01"

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            stop_process(process)

    def log(self) -> str:
        return log_tail(self.log_path, 3000)


def rest_credentials(secret: str, username: str) -> str:
    """The TURN REST API password for a username: base64(HMAC-SHA1(secret, username))."""
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def try_allocate(port: int, username: str, password: str) -> dict[str, Any]:
    """A TURN Allocate over UDP with aioice's client: the relayed address, or the error."""
    from aioice import stun, turn

    async def allocate() -> dict[str, Any]:
        try:
            transport, _ = await asyncio.wait_for(
                turn.create_turn_endpoint(
                    asyncio.DatagramProtocol, ("127.0.0.1", port), username, password
                ),
                timeout=10,
            )
        except stun.TransactionFailed as failure:
            code, reason = failure.response.attributes.get("ERROR-CODE", (None, ""))
            return {"allocated": False, "error_code": code, "reason": reason}
        relayed = transport.get_extra_info("sockname")
        transport.close()
        await asyncio.sleep(0.1)  # let the deallocation go out
        return {"allocated": True, "relayed": list(relayed)}

    # Its own thread and loop: the caller may be inside Playwright's sync API.
    result: dict[str, Any] = {}

    def run() -> None:
        result.update(asyncio.run(allocate()))

    import threading

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    return result
