"""``/docs`` works offline: every asset it references is the app's own."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import httpx

# What a page asks the browser to load: scripts, styles, icons, fonts.
ASSET = re.compile(r"""<(?:script|link)\b[^>]*?\b(?:src|href)\s*=\s*["']([^"']+)["']""", re.I)
CONTENT_TYPES = {".js": "javascript", ".css": "text/css"}


async def test_docs_page_loads_only_same_origin_assets(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    html = response.text
    assets = ASSET.findall(html)
    assert any(asset.endswith(".js") for asset in assets), assets
    # No absolute URL anywhere in the page (a CDN, Google Fonts): the page works offline.
    assert not re.search(r"""["'](?:https?:)?//""", html), html
    for asset in assets:
        url = urljoin(str(response.url), asset)
        assert urlsplit(url).netloc == urlsplit(str(response.url)).netloc, asset
        served = await client.get(url)
        assert served.status_code == 200, asset
        suffix = asset[asset.rfind(".") :]
        if suffix in CONTENT_TYPES:
            assert CONTENT_TYPES[suffix] in served.headers["content-type"], asset
            assert len(served.content) > 10_000, asset  # the real bundle, not a stub
    # The browser is told the same: nothing from another origin may load here.
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "http" not in policy


async def test_redoc_sends_people_to_docs(client: httpx.AsyncClient) -> None:
    """ReDoc's bundle fetches its vendor's logo from a CDN whatever it is told: not served."""
    response = await client.get("/redoc")
    assert response.status_code == 308
    assert response.headers["location"] == "/docs"
