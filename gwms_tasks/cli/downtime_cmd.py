"""``gwms downtime list|add|end``: downtimes set live, without editing files or restarting.

They are stored in the state Redis (``keys.downtimes()``, the downtimes-file format) and apply
together with the configured ``factory.downtimes_file``, within one find-work cycle. Every
edit is validated whole before it is stored, and is atomic: a bad edit changes nothing, and
two operators editing at once both get their change. Downtimes in the file are shown by
``list`` but only the file's owner edits them.
"""

from __future__ import annotations

from pathlib import Path

import click

from gwms_tasks.adapters.redis_downtimes import edit_downtimes_text, read_downtimes_text
from gwms_tasks.cli._ops import NONE, echo_lines, open_runtime, operating, table, utc
from gwms_tasks.cli._root import EXIT_INVALID, config_option, gwms, report
from gwms_tasks.config_file import read_downtimes
from gwms_tasks.core.config import FactoryConfig
from gwms_tasks.core.downtime_edit import (
    ScopeFilter,
    add_period,
    end_periods,
    matching,
    parse_moment,
    status_at,
)
from gwms_tasks.core.downtimes import (
    ALL,
    FACTORY,
    Downtime,
    Downtimes,
    DowntimeScope,
    format_downtime,
    parse_downtimes,
)
from gwms_tasks.errors import ConfigError, PermanentError
from gwms_tasks.runtime import Runtime

TIME_HELP = "'now', epoch seconds, or ISO 8601 (UTC when it has no offset)"


@gwms.group()
def downtime() -> None:
    """Stop new glideins for the factory, an entry, a frontend or a security class."""


@downtime.command("list")
@config_option()
def downtime_list(config_path: Path) -> None:
    """Every downtime: those set with `gwms downtime add`, then those of the file."""
    problem: ConfigError | None = None
    with operating("read the downtimes"):
        runtime = open_runtime(config_path)
        config = runtime.refresh()
        now = runtime.clock()
        rows = [_row(p, now, "gwms downtime") for p in _stored(runtime).periods]
        try:
            rows += [_row(p, now, "file") for p in _file_periods(config).periods]
        except ConfigError as exc:
            problem = exc
    headers = ("STATUS", "START", "END", "ENTRY", "FRONTEND", "CLASS", "SET BY", "COMMENT")
    echo_lines(table(headers, rows) if rows else ["no downtimes"])
    if problem is not None:
        click.echo("the downtimes file is invalid, and ignored by the factory:", err=True)
        report(problem)
        raise SystemExit(EXIT_INVALID)


@downtime.command("add")
@config_option()
@click.option("--entry", default=FACTORY, show_default=True, help="An entry, All or factory.")
@click.option("--frontend", default=ALL, show_default=True, help="A frontend, or All.")
@click.option("--security-class", default=ALL, show_default=True, help="A class, or All.")
@click.option("--start", default="now", show_default=True, help=TIME_HELP)
@click.option("--end", help=f"{TIME_HELP}; open-ended when not given")
@click.option("--comment", default="", help="Why (shown by `list` and on the web pages).")
def downtime_add(
    config_path: Path,
    entry: str,
    frontend: str,
    security_class: str,
    start: str,
    end: str | None,
    comment: str,
) -> None:
    """Add a downtime; it applies from the next find-work cycle."""
    with operating("add a downtime"):
        runtime = open_runtime(config_path)
        check_scope(runtime.refresh(), entry, frontend, security_class)
        now = runtime.clock()
        period = _period(
            _moment(start, now, "--start"),
            None if end is None else _moment(end, now, "--end"),
            DowntimeScope(entry, frontend, security_class),
            comment,
        )
        source = _source(runtime)
        edit_downtimes_text(
            runtime.state_client,
            runtime.keys,
            lambda old: (add_period(old, period, source), None),
        )
    click.echo(f"added: {format_downtime(period)}")


@downtime.command("end")
@config_option()
@click.option("--entry", help="Only downtimes of this entry (or All, or factory).")
@click.option("--frontend", help="Only downtimes of this frontend (or All).")
@click.option("--security-class", help="Only downtimes of this security class (or All).")
def downtime_end(
    config_path: Path, entry: str | None, frontend: str | None, security_class: str | None
) -> None:
    """End now the downtimes in force that match (all of them without options)."""
    match = ScopeFilter(entry, frontend, security_class)
    with operating("end downtimes"):
        runtime = open_runtime(config_path)
        now = runtime.clock()
        source = _source(runtime)
        ended = edit_downtimes_text(
            runtime.state_client,
            runtime.keys,
            lambda old: end_periods(old, now, match, source),
        )
        if not ended:
            raise PermanentError(_nothing_to_end(runtime, match, now))
    for period in ended:
        click.echo(f"ended: {format_downtime(period)}")


def check_scope(config: FactoryConfig, entry: str, frontend: str, security_class: str) -> None:
    """The names of a new downtime are configured ones (or All / factory).

    Raises:
        PermanentError: naming the option and the names it accepts.
    """
    if entry not in (ALL, FACTORY, *config.entries):
        known = ", ".join([ALL, FACTORY, *config.entries])
        raise PermanentError(f"--entry: unknown entry {entry!r} (expected one of: {known})")
    if frontend != ALL and frontend not in config.frontends:
        known = ", ".join([ALL, *config.frontends])
        raise PermanentError(
            f"--frontend: unknown frontend {frontend!r} (expected one of: {known})"
        )
    chosen = config.frontends.values() if frontend == ALL else [config.frontends[frontend]]
    classes = sorted({sc for fe in chosen for sc in fe.security_classes})
    if security_class != ALL and security_class not in classes:
        known = ", ".join([ALL, *classes])
        raise PermanentError(
            f"--security-class: unknown security class {security_class!r} "
            f"(expected one of: {known})"
        )


def _moment(word: str, now: float, option: str) -> float:
    try:
        return parse_moment(word, now)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from exc


def _period(start: float, end: float | None, scope: DowntimeScope, comment: str) -> Downtime:
    try:
        return Downtime(start, end, scope, comment)
    except ValueError as exc:
        raise PermanentError(f"bad downtime: {exc}") from exc


def _source(runtime: Runtime) -> str:
    return f"redis:{runtime.keys.downtimes()}"


def _stored(runtime: Runtime) -> Downtimes:
    return parse_downtimes(
        read_downtimes_text(runtime.state_client, runtime.keys), _source(runtime)
    )


def _file_periods(config: FactoryConfig) -> Downtimes:
    path = config.factory.downtimes_file
    return Downtimes() if path is None else read_downtimes(Path(path))


def _nothing_to_end(runtime: Runtime, match: ScopeFilter, now: float) -> str:
    text = f"no downtime in force set with `gwms downtime` matches {match.describe()}"
    try:
        in_file = matching(_file_periods(runtime.config).periods, now, match)
    except ConfigError:
        in_file = []
    if in_file:
        text += (
            f"; {len(in_file)} in force in the downtimes file "
            f"{runtime.config.factory.downtimes_file} do (edit that file to end them)"
        )
    return text


def _row(period: Downtime, now: float, source: str) -> list[str]:
    scope = period.scope
    return [
        status_at(period, now),
        utc(period.start),
        "open" if period.end is None else utc(period.end),
        scope.entry,
        scope.frontend,
        scope.security_class,
        source,
        period.comment or NONE,
    ]
