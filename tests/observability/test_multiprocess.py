"""With several uvicorn workers, any worker's scrape adds up every worker's counters."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests import services
from tests.processes import free_port, server_env, stop_server
from videochat import cli

ROUTE = {"method": "GET", "route": "/health/live", "status": "200"}


def _served_per_worker(folder: Path) -> dict[str, float]:
    """Requests to /health/live recorded in each worker's own counter file."""
    counts = {}
    for path in folder.glob("counter_*.db"):
        merged = MultiProcessCollector.merge([str(path)])
        counts[path.name] = sum(
            sample.value
            for family in merged
            for sample in family.samples
            if sample.name == "videochat_http_requests_total" and sample.labels == ROUTE
        )
    return counts


def _exposed_total(text: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "videochat_http_requests_total" and sample.labels == ROUTE
    )


async def _burst(base: str, count: int) -> None:
    # No keep-alive: every request is a new connection, which any worker may accept.
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10) as http:
        responses = await asyncio.gather(*(http.get("/health/live") for _ in range(count)))
    assert all(response.status_code == 200 for response in responses)


def _serve_two_workers(env: dict[str, str], port: int, log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "videochat.cli", "serve", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


@pytest.mark.redis
async def test_counters_from_two_workers_add_up(tmp_path: Path) -> None:
    services.redis_available()
    folder = tmp_path / "prometheus"
    port = free_port()
    env = server_env(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path / 'videochat.db'}",
        VIDEOCHAT_REDIS__URL=services.REDIS_URL,
        PROMETHEUS_MULTIPROC_DIR=str(folder),
    )
    base = f"http://127.0.0.1:{port}"
    process = _serve_two_workers(env, port, tmp_path / "server.log")
    try:
        async with httpx.AsyncClient(base_url=base, timeout=2) as http:
            deadline = time.monotonic() + 90
            while True:
                assert process.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "the server did not start"
                try:
                    if (await http.get("/health")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)

            sent = 0
            for _ in range(15):
                await _burst(base, 20)
                sent += 20
                if len([n for n in _served_per_worker(folder).values() if n > 0]) >= 2:
                    break
            per_worker = _served_per_worker(folder)
            assert len([n for n in per_worker.values() if n > 0]) >= 2, per_worker
            assert sum(per_worker.values()) == sent

            # Scrapes land on either worker; each reports the sum of both.
            for _ in range(6):
                response = await http.get("/metrics/prometheus")
                assert _exposed_total(response.text) == sent
            summary = (await http.get("/metrics")).json()
            assert summary["requests"]["total"] >= sent
    finally:
        stop_server(process)


def test_serve_with_workers_makes_a_metrics_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    assert cli._prepare_metrics_dir(1) is None
    made = cli._prepare_metrics_dir(2)
    assert made is not None and made.is_dir()
    try:
        assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(made)
    finally:
        made.rmdir()
        # cli set it behind monkeypatch's back: unset it, or monkeypatch's undo of the
        # setenv below would put it back and every later server would inherit it.
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]

    # A configured folder is kept, minus the counters of a previous run.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    (tmp_path / "counter_123.db").write_bytes(b"old")
    (tmp_path / "gauge_livesum_123.db").write_bytes(b"old")
    (tmp_path / "notes.txt").write_text("mine")
    assert cli._prepare_metrics_dir(4) is None
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt"]
