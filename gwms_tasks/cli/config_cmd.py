"""``gwms config check``: validate a factory config file and the downtimes file it names."""

from __future__ import annotations

from pathlib import Path

import click

from gwms_tasks.cli._root import EXIT_INVALID, gwms, report
from gwms_tasks.config_file import read_config, read_downtimes
from gwms_tasks.core.config_summary import summarize
from gwms_tasks.errors import ConfigError


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
        report(exc)
        raise SystemExit(EXIT_INVALID) from exc
    click.echo(f"{file}: OK")
    for line in summarize(factory_config):
        click.echo(line)
