"""Real server processes (``python -m videochat.cli serve``) for restart and scale-out tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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
    process = subprocess.Popen(
        [sys.executable, "-m", "videochat.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(process.stderr.read().decode() if process.stderr else "exited")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("server did not start")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
