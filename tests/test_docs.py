"""docs/API.md documents exactly the routes the app has (checked against its OpenAPI)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from videochat.app import create_app
from videochat.config import Settings

DOCS = Path(__file__).resolve().parent.parent / "docs"
HEADING = re.compile(r"^#{2,4}\s+(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS|WS)\s+(/\S*)\s*$")
OPENAPI_METHODS = {"get", "post", "put", "patch", "delete", "head", "options"}


def _template(path: str) -> str:
    # "/chat/{path:path}" is documented as "/chat/{path}".
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", path)


def _routes(routes: list[Any]) -> Iterator[tuple[str, str]]:
    """(method, path) of every route, including those left out of the OpenAPI document."""
    for route in routes:
        nested = getattr(route, "original_router", None) or route
        if nested is not route or (hasattr(route, "routes") and not hasattr(route, "path")):
            yield from _routes(list(getattr(nested, "routes", [])))
            continue
        path = getattr(route, "path", None)
        if not isinstance(path, str):
            continue
        methods = getattr(route, "methods", None)
        if methods is None and "websocket" in type(route).__name__.lower():
            yield "WS", _template(path)
        for method in methods or ():
            yield method.upper(), _template(path)


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app(Settings(environment="test"))


@pytest.fixture(scope="module")
def documented() -> set[tuple[str, str]]:
    text = (DOCS / "API.md").read_text()
    found = [HEADING.match(line) for line in text.splitlines()]
    return {(match.group(1), match.group(2)) for match in found if match}


def test_every_openapi_operation_is_documented(
    app: FastAPI, documented: set[tuple[str, str]]
) -> None:
    operations = {
        (method.upper(), path)
        for path, item in app.openapi()["paths"].items()
        for method in item
        if method in OPENAPI_METHODS
    }
    assert len(operations) > 30
    missing = sorted(operations - documented)
    assert not missing, f"add a '### METHOD /path' section to docs/API.md for: {missing}"


def test_every_documented_route_exists(app: FastAPI, documented: set[tuple[str, str]]) -> None:
    real = set(_routes(list(app.routes)))
    assert ("WS", "/ws/{room_id}/{user_id}") in real
    stale = sorted(documented - real)
    assert not stale, f"docs/API.md documents routes the app does not have: {stale}"


def test_api_reference_links_the_other_docs() -> None:
    text = (DOCS / "API.md").read_text()
    for name in ("PROTOCOL.md", "VIDEOS.md", "LIVE.md", "DEPLOY.md"):
        assert f"({name}" in text
        assert (DOCS / name).is_file(), name


def test_links_between_docs_resolve() -> None:
    broken = []
    for page in sorted(DOCS.glob("*.md")):
        for target in re.findall(r"\]\(([^)#\s]+)", page.read_text()):
            if "://" not in target and not (page.parent / target).exists():
                broken.append(f"{page.name} -> {target}")
    assert not broken, f"links to files that do not exist: {broken}"
