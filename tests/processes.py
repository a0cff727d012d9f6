"""Real server processes (``python -m videochat.cli serve``) for restart and scale-out tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

# Every port free_port handed out in this process. A probe's port is free again once the
# probe closes, so two probes in a row can get the same one (a Janus then found its admin
# port taken by its own API, and exited): none is handed out twice.
_HANDED_OUT: set[int] = set()


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A port free on 127.0.0.1 now (TCP, or UDP and TCP with ``SOCK_DGRAM``), never one
    this process was handed before."""
    while True:
        with socket.socket(socket.AF_INET, kind) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
            if kind != socket.SOCK_STREAM:
                with socket.socket() as tcp:  # (a UDP server, coturn, listens on TCP too)
                    try:
                        tcp.bind(("127.0.0.1", port))
                    except OSError:
                        continue
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def server_env(tmp_path: Path, database_url: str, **extra: str) -> dict[str, str]:
    """Environment for a test server process: quiet, no rate limits."""
    return {
        **os.environ,
        "VIDEOCHAT_ENVIRONMENT": "test",
        "VIDEOCHAT_DATA_DIR": str(tmp_path),
        "VIDEOCHAT_DATABASE_URL": database_url,
        "VIDEOCHAT_RATE_LIMIT__ENABLED": "false",
        "VIDEOCHAT_LOG_LEVEL": "WARNING",
        **extra,
    }


def start_server(env: dict[str, str], port: int, *, timeout: float = 60) -> subprocess.Popen[bytes]:
    """Start ``videochat serve`` and wait until ``/health`` answers 200."""
    # A file, not a pipe: nobody drains a pipe, and a server that logs a lot (say,
    # while Redis is down) would block on a full one.
    log_path = Path(env.get("VIDEOCHAT_DATA_DIR", ".")) / f"server-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "videochat.cli", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(log_path.read_text(errors="replace")[-4000:])
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("server did not start")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Ask a process to stop; kill it when it has not within 10 s."""
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


stop_server = stop_process


def log_tail(path: Path, chars: int = 3000) -> str:
    """The end of a process's log file, for a failure message."""
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


def start_redis(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    """A throwaway redis-server on ``port`` (never the machine's shared one)."""
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("redis-server did not start")


class ThrowawayRedis:
    """A redis-server of the test's own on a free port, to stop and start at will."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = start_redis(self.port, self.workdir)

    def stop(self) -> None:
        """Kill it (an outage, not a clean shutdown)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None
