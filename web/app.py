"""The factory's web server: staging area, monitoring pages, JSON API and ``/metrics``.

``create_app(sources, stage_dir)`` assembles one FastAPI app:

* ``/``, ``/entries/{entry}``, ``/frontends/{name}``, ``/failed``: HTML pages (Jinja2 templates
  in ``web/templates``) that fetch the JSON API and refresh themselves (``web/static``);
* ``/api/...``: the JSON API (:mod:`web.api`), documented at ``/openapi.json``;
* ``/metrics``: Prometheus exposition (:mod:`web.metrics`);
* the staging area, read-only, at the path of ``factory.web_url`` (:mod:`web.staging`).

The HTML pages carry no data: the browser fetches it from the API with the operator token the
user typed (kept in the browser's local storage), so ``web.public_read: false`` protects the
data whatever the page. The pages are served with a strict Content-Security-Policy (scripts
and styles from this server only).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, Final
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gwms_tasks import __version__
from gwms_tasks.errors import ConfigError, GwmsError, TransientError
from gwms_tasks.services.monitoring_view import MonitoringSources
from web import pages
from web.api import READ_ERRORS, router
from web.auth import require_read
from web.deps import SourcesProvider, sources_of
from web.metrics import StateCollector
from web.staging import staging_app

WEB_DIR: Final = Path(__file__).resolve().parent
STATIC_DIR: Final = WEB_DIR / "static"
RESERVED_PATHS: Final = ("/api", "/static", "/metrics", "/entries", "/frontends", "/failed")


def create_app(
    sources: MonitoringSources | SourcesProvider,
    stage_dir: Path | str,
    *,
    refresh_seconds: float = pages.REFRESH_SECONDS,
) -> FastAPI:
    """The web app of one factory.

    Args:
        sources: what the pages read, or a function returning them for each request (so a
            config reload is picked up without a restart).
        stage_dir: the staging area to serve at the path of ``factory.web_url``.
        refresh_seconds: how often the pages fetch their data again.

    Raises:
        ConfigError: the path of ``factory.web_url`` would hide the monitoring pages.
    """
    provide: SourcesProvider = sources if callable(sources) else lambda: sources
    config = provide().config
    app = FactoryApp(
        title=f"gwms-tasks factory {config.factory.name}",
        version=__version__,
        description="Monitoring of a glidein factory: entries, requests, decisions, glideins.",
        docs_url=None,  # Swagger UI loads from a CDN, and factory machines have no internet
        redoc_url=None,
    )
    app.state.sources = provide
    app.state.refresh_seconds = refresh_seconds
    app.include_router(router)
    app.include_router(pages.router)
    app.add_api_route(
        "/metrics",
        metrics,
        methods=["GET"],
        response_class=Response,
        responses={
            200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"},
            **READ_ERRORS,
        },
        dependencies=[Depends(require_read)],
        tags=["monitoring"],
    )
    app.add_exception_handler(GwmsError, _gwms_error)
    app.middleware("http")(_security_headers)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.mount(stage_path(config.factory.web_url), staging_app(Path(stage_dir)), name="stage")
    return app


class FactoryApp(FastAPI):
    """FastAPI whose OpenAPI schema tells whether reads need the token under the current config."""

    def openapi(self) -> dict[str, Any]:
        """The schema; with ``web.public_read`` the bearer token of reads is optional."""
        self.openapi_schema = None  # rebuilt each time: a config reload may change the rule
        schema = super().openapi()
        if self.state.sources().config.web.public_read:
            for operations in schema.get("paths", {}).values():
                read = operations.get("get", {})
                if "security" in read:
                    read["security"] = [{}, *read["security"]]
        return schema


def stage_path(web_url: str) -> str:
    """The path the staging area is mounted at: the path of ``factory.web_url``.

    Raises:
        ConfigError: the path is ``/`` or one the monitoring uses.
    """
    path = urlsplit(web_url).path.rstrip("/")
    clash = next((p for p in RESERVED_PATHS if path == p or path.startswith(p + "/")), None)
    if not path or clash:
        used = clash or "/"
        raise ConfigError(
            "factory.web_url",
            [f"the staging area needs a path of its own, like /factory/stage ({used} is taken "
             "by the monitoring pages)"],
        )  # fmt: skip
    return path


def metrics(sources: Annotated[MonitoringSources, Depends(sources_of)]) -> Response:
    """The factory's state in the Prometheus text format."""
    return Response(generate_latest(StateCollector(sources)), media_type=CONTENT_TYPE_LATEST)


async def _gwms_error(request: Request, exc: Exception) -> Response:
    status = 503 if isinstance(exc, TransientError) else 500
    return JSONResponse({"detail": str(exc)}, status_code=status)


async def _security_headers(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    response = await call_next(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if response.headers.get("content-type", "").startswith("text/html"):
        response.headers["Content-Security-Policy"] = pages.CONTENT_SECURITY_POLICY
        response.headers["Referrer-Policy"] = "no-referrer"
    return response
