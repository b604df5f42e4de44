"""Serve a staging directory read-only (the demo frontend's): ``python -m ... DIR PORT PATH``.

A real frontend serves its stage with its own web server (or nginx, see the README); the demo
uses the factory's read-only staging app for it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from web.staging import staging_app


def main(argv: list[str]) -> None:
    directory, port, path = Path(argv[0]), int(argv[1]), argv[2]
    app = Starlette(routes=[Mount(path, app=staging_app(directory))])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1:])
