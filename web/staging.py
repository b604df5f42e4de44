"""Read-only HTTP serving of the factory staging area.

``staging_app(stage_dir)`` is an ASGI app (Starlette) to mount in the main web app, e.g.
``app.mount("/stage", staging_app(stage_dir))``. Versioned files (content-hashed names, see
``gwms_tasks.core.staging``) never change, so Squid and browsers may keep them for a year;
anything else (the ``signatures`` index) must be revalidated on every request.

Refused: path traversal (``..``, ``.``, empty segments, backslashes, NUL: 403), anything that
resolves outside the stage dir through a symlink (403), hidden files such as the builder's
state and build dirs (404), directories, so no listing (404), and methods other than GET/HEAD.
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

from gwms_tasks.core.staging import is_versioned_name

IMMUTABLE = "public, max-age=31536000, immutable"
NO_CACHE = "no-cache"
_TRAVERSAL_SEGMENTS = frozenset({"", ".", ".."})


def cache_control(name: str) -> str:
    """The Cache-Control header for a served file name."""
    return IMMUTABLE if is_versioned_name(name) else NO_CACHE


def locate(root: Path, relative: str) -> Path | int:
    """The file to serve for a request path under ``root``, or the HTTP status refusing it.

    Args:
        root: the resolved stage dir.
        relative: the decoded request path below the mount point, without the leading slash.

    Returns:
        The resolved file path, 403 for traversal attempts, 404 for anything not served.
    """
    segments = relative.split("/")
    directory = segments[-1] == ""
    if directory:
        segments.pop()
    for segment in segments:
        if segment in _TRAVERSAL_SEGMENTS or "\\" in segment or "\x00" in segment:
            return 403
    if directory or any(segment.startswith(".") for segment in segments):
        return 404
    resolved = Path(os.path.realpath(root.joinpath(*segments)))
    if not resolved.is_relative_to(root):
        return 403
    if not resolved.is_file():
        return 404
    return resolved


def staging_app(stage_dir: Path) -> Starlette:
    """An ASGI app serving ``stage_dir`` read-only, with cache headers per file kind."""
    root = Path(os.path.realpath(stage_dir))

    def serve(request: Request) -> Response:
        relative = str(request.path_params.get("path", ""))
        found = locate(root, relative)
        if isinstance(found, int):
            return PlainTextResponse("Forbidden\n" if found == 403 else "Not Found\n", found)
        headers = {"Cache-Control": cache_control(found.name), "X-Content-Type-Options": "nosniff"}
        return FileResponse(found, headers=headers)

    return Starlette(routes=[Route("/{path:path}", serve, methods=["GET", "HEAD"])])
