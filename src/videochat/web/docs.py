"""``/docs`` from the app's own files: no CDN, so it works offline.

FastAPI's default pages load Swagger UI and ReDoc from a CDN (and ReDoc its fonts from
Google), which leaves ``/docs`` blank on a machine without the internet and tells a
third party who reads the docs. Swagger UI's assets come from the ``fastapi-offline``
package (MIT; Swagger UI 5 as one script and one stylesheet), served under
``/docs/assets``; only its static folder is used, not its ``FastAPI`` replacement.

``/redoc`` sends people to ``/docs``: ReDoc's bundle loads its vendor's logo from
their CDN whatever it is told, and one documentation page is enough.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
ASSETS_URL = "/docs/assets"
FAVICON_URL = "/static/favicon.svg"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"


def install_api_docs(app: FastAPI, *, openapi_url: str) -> None:
    """Serve Swagger UI at ``/docs``, its assets, and ``/redoc`` as a way there."""
    title = f"{app.title} API"
    router = APIRouter(include_in_schema=False)

    @router.get("/docs")
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=title,
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=FAVICON_URL,
            oauth2_redirect_url=OAUTH2_REDIRECT_URL,
        )

    @router.get(OAUTH2_REDIRECT_URL)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @router.get("/redoc")
    async def redoc() -> RedirectResponse:
        return RedirectResponse("/docs", status_code=308)

    app.include_router(router)
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")
