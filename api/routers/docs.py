"""``/openapi.json``, ``/docs`` (Swagger UI) and ``/redoc``, behind :data:`api.deps.DocsAccess`.

FastAPI's own documentation routes take no dependencies, so the app is built without them
(``docs_url=None`` ...) and these serve the same pages: open with ``KGFORGE_OPEN_DOCS=true`` (or in
development without keys), else they need a read or write key like every read. The Swagger UI page
fetches ``/openapi.json`` from the browser without a key, so browsing the docs in a browser needs
``KGFORGE_OPEN_DOCS=true``; tools that send ``Authorization: Bearer KEY`` can read the schema either way.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, JSONResponse

from api.deps import DocsAccess

OPENAPI_URL = "/openapi.json"
router = APIRouter(dependencies=[DocsAccess], include_in_schema=False)


@router.get(OPENAPI_URL)
def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
def swagger(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url=OPENAPI_URL, title=f"{request.app.title} - Swagger UI",
                               oauth2_redirect_url="/docs/oauth2-redirect")


@router.get("/docs/oauth2-redirect")
def swagger_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(openapi_url=OPENAPI_URL, title=f"{request.app.title} - ReDoc")
