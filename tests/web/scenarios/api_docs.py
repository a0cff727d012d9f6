"""``/docs`` renders in a browser with no internet (the loopback namespace): Swagger UI
comes from the app, and every request the page makes stays on it."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import Browser, Request

from tests.web import harness


def scenario(browser: Browser, server: harness.ServerProcess, errors: list[str]) -> dict[str, Any]:
    page = harness.new_page(browser, server.url, errors, width=1366, height=800)
    requested: list[str] = []
    failed: list[str] = []

    def on_request(request: Request) -> None:
        requested.append(request.url)

    page.on("request", on_request)
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.goto("/docs")
    operations = harness.wait_for(
        "Swagger UI's operations",
        lambda: page.locator(".opblock").count() > 20 and page.locator(".opblock").count(),
        timeout=30,
    )
    # An operation opens and shows its parameters: the UI runs, not just the markup.
    page.locator(".opblock-summary", has_text="/rooms/{room_id}/messages").first.click()
    harness.wait_for(
        "an operation's parameters",
        lambda: page.locator(".parameters-container").first.is_visible(),
    )
    docs_title = page.locator(".information-container .title").first.inner_text()

    page.goto("/redoc")
    page.wait_for_url("**/docs")
    harness.wait_for("Swagger UI again", lambda: page.locator(".opblock").count() > 20)
    origins = sorted({urlsplit(url).netloc for url in requested if url.startswith("http")})
    return {
        "operations": operations,
        "docs_title": docs_title,
        "origins": origins,
        "server_origin": urlsplit(server.url).netloc,
        "failed_requests": failed,
    }
