"""Helpers of the operator commands: opening the runtime, tables, times, JSON output."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import click

from gwms_tasks.adapters.redis_state import redis_errors
from gwms_tasks.cli._root import failing_cleanly
from gwms_tasks.config_file import read_config
from gwms_tasks.runtime import Runtime

NONE = "-"


@contextlib.contextmanager
def operating(action: str) -> Iterator[None]:
    """Project errors (and Redis errors while doing ``action``) become one line and exit 1."""
    with failing_cleanly(), redis_errors(action):
        yield


def open_runtime(config_path: Path) -> Runtime:
    """The runtime of the config file; Redis is not contacted yet.

    Raises:
        ConfigError: the file cannot be read or is invalid.
    """
    return Runtime(read_config(config_path))


def utc(moment: float | None) -> str:
    """``2024-05-01 10:00:00Z`` (``-`` for None)."""
    if moment is None:
        return NONE
    return datetime.fromtimestamp(moment, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def ago(seconds: float | None) -> str:
    """``42s ago``, ``5m ago``, ``3h ago``, ``2d ago`` (``-`` for None)."""
    if seconds is None:
        return NONE
    whole = max(0, math.floor(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole >= size:
            return f"{whole // size}{unit} ago"
    return f"{whole}s ago"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Aligned columns; the last column is not padded (it holds free text)."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in (headers, *rows):
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return lines


def echo_lines(lines: Sequence[str]) -> None:
    for line in lines:
        click.echo(line)


def echo_json(value: object) -> None:
    """Pretty, key-sorted JSON on stdout (for scripts)."""
    click.echo(json.dumps(value, indent=2, sort_keys=True))
