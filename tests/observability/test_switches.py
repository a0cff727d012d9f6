"""``observability.metrics_enabled`` and ``request_logs`` turn the hot-path costs off."""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx
import pytest

from tests.support import run_server
from videochat.config import Settings
from videochat.observability import metrics


def _requests(route: str) -> float:
    labels = {"method": "GET", "route": route, "status": "200"}
    return metrics.REGISTRY.get_sample_value("videochat_http_requests_total", labels) or 0.0


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_metrics_and_request_logs_can_be_turned_off(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    off = make_settings(
        observability={"metrics_enabled": False, "request_logs": False}, log_level="INFO"
    )
    try:
        async with run_server(off) as live, httpx.AsyncClient(base_url=live.url) as http:
            before = _requests("/health/live")
            with caplog.at_level(logging.INFO):
                assert (await http.get("/health/live")).status_code == 200
            assert _requests("/health/live") == before
            assert "http.request" not in caplog.text
            assert metrics.ENABLED is False
    finally:
        metrics.ENABLED = True
    on = make_settings(log_level="INFO")
    async with run_server(on) as live, httpx.AsyncClient(base_url=live.url) as http:
        assert (await http.get("/health/live")).status_code == 200
        assert _requests("/health/live") == before + 1
        assert metrics.ENABLED is True
