"""Downtimes: periods in which an entry (or the factory, or one frontend) gets no new glideins.

The file format is glideinWMS's (reference §3.8), one period per line::

    START END [ENTRY [FRONTEND [SECURITY_CLASS]]] [# comment]

START and END are ISO-8601 times; END may be ``None`` (open ended). A missing scope is
``factory All All``. Unlike glideinWMS, which reads times without an offset in the factory's
local time zone, times without an offset are taken as **UTC** here, so that a downtime means
the same instant on every machine of a fleet; written times always carry ``+00:00``.

Scoping (who a line applies to) is in :meth:`Downtimes.down_at`. Downtimes only stop new
submissions: removals and sanitizing go on (the caller's business).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from gwms_tasks.core.config_types import ALL, FACTORY
from gwms_tasks.core.decisions import DownReason
from gwms_tasks.errors import ConfigError

__all__ = [
    "ALL",
    "FACTORY",
    "Downtime",
    "DowntimeScope",
    "Downtimes",
    "check_time",
    "format_downtime",
    "format_downtimes",
    "parse_downtimes",
    "parse_time",
]

OPEN_END: Final = "None"
_NAME = re.compile(r"[A-Za-z0-9._-]+")
_FORMAT: Final = "'START END [ENTRY [FRONTEND [SECURITY_CLASS]]] [# comment]'"


@dataclass(frozen=True, slots=True)
class DowntimeScope:
    """Who a downtime applies to.

    Attributes:
        entry: an entry name, ``All`` (every entry) or ``factory`` (the factory itself).
        frontend: a frontend (security name) or ``All``.
        security_class: a security class of that frontend or ``All``.
    """

    entry: str = FACTORY
    frontend: str = ALL
    security_class: str = ALL

    def __post_init__(self) -> None:
        for name in (self.entry, self.frontend, self.security_class):
            if not _NAME.fullmatch(name):
                raise ValueError(
                    f"downtime scope names are letters, digits, '.', '_', '-': {name!r}"
                )

    def matches(self, entry: str, frontend: str, security_class: str) -> bool:
        """True if a check for (entry, frontend, security_class) is covered by this scope."""
        # "factory" lines are for the factory check only; "All" lines cover every real entry.
        entry_ok = self.entry == FACTORY if entry == FACTORY else self.entry in (ALL, entry)
        return (
            entry_ok
            and self.frontend in (ALL, frontend)
            and self.security_class in (ALL, security_class)
        )


@dataclass(frozen=True, slots=True)
class Downtime:
    """One downtime period, ``[start, end)`` in epoch seconds (``end=None``: open ended).

    Raises:
        ConfigError: a time a downtimes file cannot hold (see :func:`check_time`).
        ValueError: the period does not end after it starts.
    """

    start: float
    end: float | None
    scope: DowntimeScope = DowntimeScope()
    comment: str = ""

    def __post_init__(self) -> None:
        try:
            check_time(self.start, "start")
            if self.end is not None:
                check_time(self.end, "end")
        except ValueError as exc:
            raise ConfigError("downtime", [str(exc)]) from None
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"a downtime must end after it starts ({self.start} >= {self.end})")

    def active_at(self, now: float) -> bool:
        return self.start <= now and (self.end is None or now < self.end)


@dataclass(frozen=True, slots=True)
class Downtimes:
    """The downtimes of a factory, in file order."""

    periods: tuple[Downtime, ...] = ()

    def down_at(
        self,
        now: float,
        entry: str = FACTORY,
        frontend: str = ALL,
        security_class: str = ALL,
    ) -> Downtime | None:
        """The first downtime active at ``now`` for this check, or None.

        Rules (reference §3.8): a ``factory`` line only matches the factory check
        (``entry="factory"``); an ``All`` line matches every entry but not the factory check;
        a line naming a frontend or security class matches only checks for that frontend or
        class, so a check with ``frontend="All"`` (the entry as a whole) ignores them.
        A request of an entry should check the factory too: see :meth:`blocking`.
        """
        for period in self.periods:
            if period.active_at(now) and period.scope.matches(entry, frontend, security_class):
                return period
        return None

    def blocking(
        self, now: float, entry: str, frontend: str, security_class: str
    ) -> Downtime | None:
        """The downtime, if any, that stops new glideins for one request at ``now``.

        A request is stopped by a factory downtime, an entry downtime, or a downtime scoped to
        its frontend or security class.
        """
        return self.down_at(now) or self.down_at(now, entry, frontend, security_class)


def down_reason(period: Downtime) -> DownReason:
    """The DownReason a downtime gives to the requests it stops: its narrowest scope."""
    if period.scope.security_class != ALL:
        return DownReason.SECURITY_CLASS_DOWNTIME
    if period.scope.frontend != ALL:
        return DownReason.FRONTEND_DOWNTIME
    if period.scope.entry == FACTORY:
        return DownReason.FACTORY_DOWNTIME
    return DownReason.ENTRY_DOWNTIME


def entry_downtime(downtimes: Downtimes, now: float, entry: str) -> Downtime | None:
    """The downtime that stops the whole entry at ``now`` (a factory or entry one), or None."""
    return downtimes.down_at(now) or downtimes.down_at(now, entry)


def entry_down_reason(downtimes: Downtimes, now: float, entry: str) -> DownReason | None:
    """Why the whole entry takes no new glideins at ``now`` (factory or entry downtime)."""
    period = entry_downtime(downtimes, now, entry)
    return None if period is None else down_reason(period)


def request_down_reason(
    downtimes: Downtimes, now: float, entry: str, frontend: str, security_class: str
) -> DownReason | None:
    """Why one request's new glideins are stopped at ``now``, or None."""
    period = downtimes.blocking(now, entry, frontend, security_class)
    return None if period is None else down_reason(period)


def parse_downtimes(text: str, source: str) -> Downtimes:
    """Parse a downtimes file.

    Args:
        text: the file's text.
        source: where it came from, for error messages.

    Raises:
        ConfigError: naming the line of every bad line.
    """
    periods: list[Downtime] = []
    found: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            period = _parse_line(line)
        except ValueError as exc:
            found.append(f"line {number}: {exc}")
            continue
        if period is not None:
            periods.append(period)
    if found:
        raise ConfigError(source, found)
    return Downtimes(tuple(periods))


def _parse_line(line: str) -> Downtime | None:
    """One line, or None for a blank or comment line. Raises ValueError with the reason."""
    body, _, comment = line.partition("#")
    fields = body.split()
    if not fields:
        return None
    if not 2 <= len(fields) <= 5:
        raise ValueError(f"expected {_FORMAT}, got {len(fields)} field(s): {body.strip()!r}")
    start = parse_time(fields[0], "START")
    end = None if fields[1] == OPEN_END else parse_time(fields[1], "END")
    if end is not None and end <= start:
        raise ValueError(f"END {fields[1]} is not after START {fields[0]}")
    names = fields[2:]
    for name in names:
        if not _NAME.fullmatch(name):
            raise ValueError(f"expected a name of letters, digits, '.', '_' or '-', got {name!r}")
    return Downtime(start, end, DowntimeScope(*names), _clean(comment))


def parse_time(word: str, what: str) -> float:
    """Epoch seconds of an ISO-8601 time (UTC when it has no offset) a downtimes file can hold.

    Raises:
        ValueError: naming ``what`` and the format expected.
    """
    try:
        moment = datetime.fromisoformat(word)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)  # UTC, not local time: see the module docstring
        # astimezone checks it is a UTC date that exists; check_time that it can be written
        return check_time(moment.astimezone(UTC).timestamp(), what)
    except (ValueError, OverflowError):
        raise ValueError(
            f"{what}: expected an ISO-8601 time like 2024-05-01T10:00:00+00:00, got {word!r}"
        ) from None


def _clean(comment: str) -> str:
    """A comment on one line, with runs of white space made single spaces."""
    return " ".join(comment.split())


def check_time(moment: float, what: str) -> float:
    """``moment`` if a downtimes file can hold it (a UTC time of the years 1 to 9999).

    Raises:
        ValueError: naming ``what``; also for NaN and infinities.
    """
    try:
        _format_time(moment)
    except (ValueError, OverflowError, OSError):
        raise ValueError(f"{what}: {moment!r} is not a time of the years 1 to 9999") from None
    return moment


def _format_time(moment: float) -> str:
    return datetime.fromtimestamp(moment, tz=UTC).isoformat()


def format_downtime(period: Downtime) -> str:
    """One line of a downtimes file for ``period`` (``parse_downtimes`` reads it back)."""
    end = OPEN_END if period.end is None else _format_time(period.end)
    scope = period.scope
    line = (
        f"{_format_time(period.start)} {end} {scope.entry} {scope.frontend} {scope.security_class}"
    )
    comment = _clean(period.comment)
    return f"{line} # {comment}" if comment else line


def format_downtimes(downtimes: Downtimes) -> str:
    """The whole text of a downtimes file."""
    return "".join(format_downtime(period) + "\n" for period in downtimes.periods)
