"""The root of the ``gwms`` command line and the helpers its command modules share.

Each command module (``gwms_tasks/cli/<area>.py``) hangs its groups and commands off
:data:`gwms`; ``gwms_tasks/cli/__init__.py`` imports every module of the package, so a new
module is picked up without touching the others. Commands stay thin shells around services.
Expected failures are project errors, printed as plain lines on stderr with exit code 1.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from gwms_tasks import __version__
from gwms_tasks.celery_app import CONFIG_ENV
from gwms_tasks.errors import ConfigError, GwmsError

EXIT_INVALID = 1
F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_CONFIG = "/etc/gwms-tasks/factory.yaml"


@click.group()
@click.version_option(__version__, prog_name="gwms")
def gwms() -> None:
    """gwms-tasks: a glidein factory on Celery + Redis."""


def config_option() -> Callable[[F], F]:
    """``--config FILE``: the factory config (``$GWMS_CONFIG``, else the system default)."""
    return click.option(
        "--config",
        "config_path",
        type=click.Path(path_type=Path, dir_okay=False),
        envvar=CONFIG_ENV,
        default=DEFAULT_CONFIG,
        show_default=True,
        help=f"Factory config file (env {CONFIG_ENV}).",
    )


def report(error: GwmsError) -> None:
    """Print a project error on stderr: one ``source: problem`` line per config problem."""
    if isinstance(error, ConfigError):
        for problem in error.problems:
            click.echo(f"{error.source}: {problem}", err=True)
    else:
        click.echo(f"gwms: {error}", err=True)


@contextlib.contextmanager
def failing_cleanly() -> Iterator[None]:
    """Turn a project error into its message on stderr and exit code 1 (no traceback)."""
    try:
        yield
    except GwmsError as exc:
        report(exc)
        raise SystemExit(EXIT_INVALID) from exc
