"""`make run` on a fresh machine serves, and never removes what `make test` installed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.processes import free_port

ROOT = Path(__file__).resolve().parent.parent
# Two server start-ups through make and uv: ~30 s on two busy cores.
pytestmark = pytest.mark.slow


def _uv() -> str:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH")
    return uv


def _env(venv: Path, data_dir: Path) -> dict[str, str]:
    """The environment of a `make` run: its own virtualenv and data dir, uv's cache only."""
    env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    env.update(
        UV_PROJECT_ENVIRONMENT=str(venv),
        UV_OFFLINE="1",  # the lock's packages are in uv's cache already (this run uses them)
        VIDEOCHAT_DATA_DIR=str(data_dir),
        VIDEOCHAT_ENVIRONMENT="development",
        VIDEOCHAT_LOG_LEVEL="WARNING",
        # As on this project's CI machines: Python itself writes no bytecode, so what is
        # not compiled at install is compiled again by every process.
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def _make_run_serves(env: dict[str, str], log: Path) -> None:
    """Start `make run` on a free port, wait for /health, then stop its process group."""
    port = free_port()
    with log.open("wb") as output:
        process = subprocess.Popen(
            ["make", "-C", str(ROOT), "run", f"PORT={port}"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # make, uv and the server: stopped together below
        )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert process.poll() is None, log.read_text(errors="replace")[-4000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        pytest.fail(f"make run did not serve: {log.read_text(errors='replace')[-4000:]}")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)


def test_make_run_creates_the_environment_and_keeps_the_test_tools(tmp_path: Path) -> None:
    uv = _uv()
    venv = tmp_path / "venv"
    env = _env(venv, tmp_path / "data")
    # A fresh machine: no environment, no database.
    _make_run_serves(env, tmp_path / "first.log")
    assert (tmp_path / "data").is_dir()
    # The packages came with their bytecode (uv's compile-bytecode).
    compiled = list(venv.glob("lib/python3*/site-packages/fastapi/__pycache__/__init__.*.pyc"))
    assert compiled, "make run installed the packages without their bytecode"
    # What `make test` does next (dev tools in), then `make run` again.
    subprocess.run([uv, "sync", "--frozen", "-q"], cwd=ROOT, env=env, check=True)
    tools = ("pytest", "playwright")
    assert all((venv / "bin" / tool).exists() for tool in tools)
    _make_run_serves(env, tmp_path / "second.log")
    missing = [tool for tool in tools if not (venv / "bin" / tool).exists()]
    assert not missing, f"make run removed {missing}: {(tmp_path / 'second.log').read_text()}"
