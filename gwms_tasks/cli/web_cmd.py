"""``gwms web``: the factory's web server (staging area, monitoring pages, JSON API, metrics)."""

from __future__ import annotations

import logging
from pathlib import Path

import click
import uvicorn

from gwms_tasks.adapters.celery_dispatcher import CeleryDispatcher
from gwms_tasks.celery_app import make_celery
from gwms_tasks.cli._root import config_option, failing_cleanly, gwms
from gwms_tasks.config_file import read_config
from gwms_tasks.runtime import Runtime
from web.app import create_app
from web.wiring import runtime_sources


@gwms.command("web")
@config_option()
@click.option(
    "--loglevel",
    "-l",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
def web(config_path: Path, loglevel: str) -> None:
    """Serve the staging area, the monitoring pages, the JSON API and /metrics.

    Listens on web.listen_host:web.listen_port of the config. The staging area is served at
    the path of factory.web_url; retrying failed submits needs web.operator_token.
    """
    logging.basicConfig(level=loglevel.upper())
    with failing_cleanly():
        config = read_config(config_path)
        runtime = Runtime(config)
        dispatcher = CeleryDispatcher(make_celery(config))
        stage_dir = Path(config.factory.stage_dir)
        app = create_app(runtime_sources(runtime, dispatcher), stage_dir)
    uvicorn.run(
        app,
        host=config.web.listen_host,
        port=config.web.listen_port,
        log_level=loglevel.lower(),
        proxy_headers=False,
    )
