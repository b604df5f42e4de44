"""Edits of the downtimes operators set with ``gwms downtime``: text in, text out.

The text is the downtimes-file format of :mod:`gwms_tasks.core.downtimes`. Every edit returns
the whole new text, already validated by :func:`parse_downtimes`, so that a bad edit raises
before anything is stored and the stored text always parses. Times are whole seconds: a
downtime set "now" starts at the current second.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final

from gwms_tasks.core.downtimes import (
    Downtime,
    Downtimes,
    DowntimeScope,
    check_time,
    format_downtime,
    format_downtimes,
    parse_downtimes,
    parse_time,
)

NOW: Final = "now"


def parse_moment(word: str, now: float) -> float:
    """A time given on the command line: ``now``, epoch seconds, or ISO 8601.

    An ISO time is read as in the downtimes file (without an offset it is UTC), and any time
    must be one the downtimes file can hold (:func:`~gwms_tasks.core.downtimes.check_time`).

    Raises:
        ValueError: naming what was expected.
    """
    text = word.strip()
    if text.lower() == NOW:
        return float(math.floor(now))
    expected = (
        "expected 'now', epoch seconds or an ISO-8601 time like 2024-05-01T10:00:00+00:00, "
        f"got {word!r}"
    )
    try:
        seconds: float | None = float(text)
    except ValueError:
        seconds = None
    try:
        return parse_time(text, "time") if seconds is None else check_time(seconds, "time")
    except ValueError:
        raise ValueError(expected) from None


@dataclass(frozen=True, slots=True)
class ScopeFilter:
    """Which downtimes an ``end`` applies to: each field given must equal the scope's."""

    entry: str | None = None
    frontend: str | None = None
    security_class: str | None = None

    def matches(self, scope: DowntimeScope) -> bool:
        wanted = (self.entry, self.frontend, self.security_class)
        actual = (scope.entry, scope.frontend, scope.security_class)
        return all(w is None or w == a for w, a in zip(wanted, actual, strict=True))

    def describe(self) -> str:
        """``entry ce1, frontend fe1`` (``every scope`` when nothing is given)."""
        parts = [
            f"{label} {value}"
            for label, value in (
                ("entry", self.entry),
                ("frontend", self.frontend),
                ("security class", self.security_class),
            )
            if value is not None
        ]
        return ", ".join(parts) or "every scope"


def add_period(text: str, period: Downtime, source: str) -> str:
    """``text`` with ``period`` appended as one more line.

    Raises:
        ConfigError: the result does not parse (naming ``source`` and the bad line).
    """
    base = text if not text or text.endswith("\n") else text + "\n"
    new = base + format_downtime(period) + "\n"
    parse_downtimes(new, source)
    return new


def end_periods(
    text: str, now: float, match: ScopeFilter, source: str
) -> tuple[str, list[Downtime]]:
    """End at ``now`` every period of ``text`` in force at ``now`` whose scope matches.

    A period that would end where it starts is dropped (it never was in force).

    Returns:
        The new text and the periods ended (as they were before).

    Raises:
        ConfigError: ``text`` does not parse.
    """
    moment = float(math.floor(now))
    kept: list[Downtime] = []
    ended: list[Downtime] = []
    for period in parse_downtimes(text, source).periods:
        if not (period.active_at(now) and match.matches(period.scope)):
            kept.append(period)
            continue
        ended.append(period)
        if period.start < moment:
            kept.append(replace(period, end=moment))
    new = format_downtimes(Downtimes(tuple(kept)))
    parse_downtimes(new, source)
    return new, ended


def status_at(period: Downtime, now: float) -> str:
    """``in force``, ``scheduled`` (starts later) or ``ended``."""
    if period.active_at(now):
        return "in force"
    return "scheduled" if period.start > now else "ended"


def matching(periods: Sequence[Downtime], now: float, match: ScopeFilter) -> list[Downtime]:
    """The periods in force at ``now`` that ``match`` selects."""
    return [p for p in periods if p.active_at(now) and match.matches(p.scope)]
