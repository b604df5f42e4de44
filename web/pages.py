"""The HTML pages: shells that the browser fills from the JSON API and refreshes.

Each page names its kind and its API URL in ``data-`` attributes of ``<body>``; the scripts in
``web/static`` fetch the data, render sortable and filterable tables and charts, and fetch again
every :data:`REFRESH_SECONDS` (``create_app(refresh_seconds=...)``). The pages carry no data
and no inline script, so they are the same for every visitor and the strict
:data:`CONTENT_SECURITY_POLICY` holds. An unknown entry or frontend gets a 404 page when reads
are public; otherwise the page cannot tell (the API, behind the token, answers 404).
"""

from __future__ import annotations

from typing import Final
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from gwms_tasks.core.config import FactoryConfig
from web.deps import sources_of

REFRESH_SECONDS: Final = 15.0
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)

templates = Jinja2Templates(directory=__file__.rsplit("/", 1)[0] + "/templates")
router = APIRouter(include_in_schema=False)


def _page(
    request: Request, config: FactoryConfig, kind: str, title: str, api: str, status: int = 200
) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        f"{kind}.html",
        {
            "kind": kind,
            "title": title,
            "api": api,
            "factory": config.factory.name,
            "refresh": request.app.state.refresh_seconds,
        },
        status_code=status,
    )


def _public(config: FactoryConfig) -> bool:
    """Whether pages may tell which entries and frontends exist (the API says it anyway)."""
    return config.web.public_read


def _not_found(request: Request, config: FactoryConfig, what: str) -> HTMLResponse:
    return _page(request, config, "missing", f"{what} not found", "", status=404)


@router.get("/", response_class=HTMLResponse)
def overview_page(request: Request) -> HTMLResponse:
    config = sources_of(request).config
    return _page(request, config, "overview", "Factory overview", "/api/overview")


@router.get("/entries/{entry}", response_class=HTMLResponse)
def entry_page(request: Request, entry: str) -> HTMLResponse:
    config = sources_of(request).config
    if entry not in config.entries and _public(config):
        return _not_found(request, config, f"Entry {entry}")
    return _page(request, config, "entry", f"Entry {entry}", f"/api/entries/{quote(entry)}")


@router.get("/frontends/{name}", response_class=HTMLResponse)
def frontend_page(request: Request, name: str) -> HTMLResponse:
    config = sources_of(request).config
    if name not in config.frontends and _public(config):
        return _not_found(request, config, f"Frontend {name}")
    return _page(request, config, "frontend", f"Frontend {name}", f"/api/frontends/{quote(name)}")


@router.get("/failed", response_class=HTMLResponse)
def failed_page(request: Request) -> HTMLResponse:
    config = sources_of(request).config
    return _page(request, config, "failed", "Failed submits", "/api/failed-submits")
