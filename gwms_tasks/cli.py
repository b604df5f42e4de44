"""The ``gwms`` command line: parse arguments, call one service or core function, set the exit code.

Command groups hang off :func:`gwms`; each stays a thin shell around code that lives elsewhere.
Expected failures are project errors, printed as plain lines on stderr with exit code 1.
"""

from __future__ import annotations

from pathlib import Path

import click

from gwms_tasks import __version__
from gwms_tasks.config_file import read_config, read_downtimes
from gwms_tasks.core.config_summary import summarize
from gwms_tasks.errors import ConfigError

EXIT_INVALID = 1


@click.group()
@click.version_option(__version__, prog_name="gwms")
def gwms() -> None:
    """gwms-tasks: a glidein factory on Celery + Redis."""


@gwms.group()
def config() -> None:
    """Check factory configuration files."""


@config.command("check")
@click.argument("file", type=click.Path(path_type=Path))
def config_check(file: Path) -> None:
    """Validate FILE (and the downtimes file it names); print a summary or every problem."""
    try:
        factory_config = read_config(file)
        if factory_config.factory.downtimes_file is not None:
            read_downtimes(Path(factory_config.factory.downtimes_file))
    except ConfigError as exc:
        _report(exc)
        raise SystemExit(EXIT_INVALID) from exc
    click.echo(f"{file}: OK")
    for line in summarize(factory_config):
        click.echo(line)


def _report(error: ConfigError) -> None:
    """Print one ``source: key.path: problem`` line per problem on stderr."""
    for problem in error.problems:
        click.echo(f"{error.source}: {problem}", err=True)


def main() -> None:
    """Entry point of the ``gwms`` script."""
    gwms(prog_name="gwms")
