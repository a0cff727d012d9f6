"""Debian's Janus (``/usr/bin/janus``) for the tests: a real SFU on loopback.

Each instance gets a generated configuration folder: the VideoRoom plugin and the HTTP
transport only (the Janus API and the admin API on ports of their own, 127.0.0.1), token
authentication (stored tokens, added through the admin API), an admin secret, and a
VideoRoom ``admin_key`` so that only videochat can create rooms. ICE is lite and on
loopback, as in the tests' network namespace. Never the system's /etc/janus or service.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.processes import free_port, log_tail, stop_process
from tests.services import IN_CI

JANUS = Path("/usr/bin/janus")
LIBDIR = Path("/usr/lib/x86_64-linux-gnu/janus")
# Everything Debian ships but what the tests use (the VideoRoom and the HTTP transport).
OTHER_PLUGINS = (
    "audiobridge duktape echotest lua nosip recordplay sip streaming textroom videocall voicemail"
)
OTHER_TRANSPORTS = "mqtt nanomsg pfunix rabbitmq websockets"
EVENT_HANDLERS = "gelfevh mqttevh nanomsgevh rabbitmqevh sampleevh wsevh"


def available() -> bool:
    return JANUS.exists()


def require() -> None:
    """Skip without Janus on a developer's machine; fail in CI (make test installs it)."""
    if available():
        return
    reason = "janus is not installed (apt-get install janus; make test installs it)"
    if IN_CI:
        pytest.fail(f"{reason} (CI must have it)", pytrace=False)
    pytest.skip(reason)


def _libraries(kind: str, names: str, suffix: str = "") -> str:
    return ",".join(f"libjanus_{name}{suffix}.so" for name in names.split())


@dataclass
class Janus:
    """One janus process; ``start()`` waits until its admin API answers."""

    workdir: Path
    admin_secret: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    room_admin_key: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    session_timeout: int = 30
    api_port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)  # (never the api_port: free_port)
    # The address Janus gathers ICE candidates on. Janus skips loopback interfaces, so a
    # test exchanging media gives it a veth pair in its namespace (test_recording_media,
    # tests/web/janus_media.py).
    ice_address: str = "127.0.0.1"
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}/janus"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}/admin"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def udp_ports(self) -> set[int]:
        """The UDP ports this Janus has open (its ICE/RTP sockets), read from /proc."""
        if self.pid is None:
            return set()
        inodes = set()
        for fd in Path(f"/proc/{self.pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
        ports = set()
        for table in ("/proc/net/udp", "/proc/net/udp6"):
            with contextlib.suppress(OSError):
                for line in Path(table).read_text().splitlines()[1:]:
                    fields = line.split()
                    if fields[9] in inodes:
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        return ports

    @property
    def log_path(self) -> Path:
        return self.workdir / "janus.log"

    def write_config(self) -> Path:
        configs = self.workdir / "conf"
        configs.mkdir(parents=True, exist_ok=True)
        (configs / "janus.jcfg").write_text(
            f"""general: {{
    configs_folder = "{configs}"
    plugins_folder = "{LIBDIR / "plugins"}"
    transports_folder = "{LIBDIR / "transports"}"
    events_folder = "{LIBDIR / "events"}"
    loggers_folder = "{LIBDIR / "loggers"}"
    debug_level = 4
    admin_secret = "{self.admin_secret}"
    token_auth = true
    session_timeout = {self.session_timeout}
    server_name = "videochat-test"
}}
media: {{
    rtp_port_range = "20000-40000"
}}
nat: {{
    ice_lite = true
    ice_enforce_list = "{self.ice_address}"
    ignore_mdns = true
}}
plugins: {{
    disable = "{_libraries("plugins", OTHER_PLUGINS)}"
}}
transports: {{
    disable = "{_libraries("transports", OTHER_TRANSPORTS)}"
}}
loggers: {{
    disable = "libjanus_jsonlog.so"
}}
events: {{
    broadcast = false
    disable = "{_libraries("events", EVENT_HANDLERS)}"
}}
"""
        )
        (configs / "janus.transport.http.jcfg").write_text(
            f"""general: {{
    json = "plain"
    base_path = "/janus"
    http = true
    ip = "127.0.0.1"
    port = {self.api_port}
    https = false
}}
admin: {{
    admin_base_path = "/admin"
    admin_http = true
    admin_ip = "127.0.0.1"
    admin_port = {self.admin_port}
    admin_https = false
}}
"""
        )
        (configs / "janus.plugin.videoroom.jcfg").write_text(
            f"""general: {{
    admin_key = "{self.room_admin_key}"
    lock_rtp_forward = true
}}
"""
        )
        return configs

    def start(self, timeout: float = 20.0) -> None:
        configs = self.write_config()
        self._process = subprocess.Popen(
            [str(JANUS), "-F", str(configs), "-L", str(self.log_path), "-N", "-o"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            env={**os.environ, "LC_ALL": "C"},
        )
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self._process.poll() is not None:
                raise RuntimeError(f"janus exited: {self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"janus did not answer: {self.log()}")
            time.sleep(0.1)

    def _answers(self) -> bool:
        try:
            answer = httpx.post(
                self.admin_url,
                json={"janus": "ping", "transaction": "up", "admin_secret": self.admin_secret},
                timeout=0.5,
            )
        except httpx.HTTPError:
            return False
        return answer.status_code == 200 and answer.json().get("janus") == "pong"

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            stop_process(process)

    def log(self) -> str:
        return log_tail(self.log_path, 4000)


def binary_name() -> str:
    return str(JANUS) if JANUS.exists() else (shutil.which("janus") or "janus")
