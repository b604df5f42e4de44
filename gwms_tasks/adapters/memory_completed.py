"""Completed-glidein statistics and monitoring counters: the codec and the in-memory twins.

The Redis adapters (:mod:`gwms_tasks.adapters.redis_completed`) keep the same records:

* an outcome is stored as canonical JSON (``outcome_to_json``);
* its statistics are increments of hash fields named ``<stat>|<scope>`` (``stat_increments``):
  ``stat`` is a :class:`CompletedStats` field name or ``category:<failure category>``, ``scope``
  is ``entry`` or ``client:<client>``. A stat name never holds ``|``, so the field splits at its
  first ``|`` whatever the client name holds;
* the same increments go to a never-expiring totals hash and to the hash of the outcome's
  minute (``finished_at`` floored to 60 s), which expires :data:`STATS_SPAN` seconds after its
  last write. ``stats(entry, since)`` sums the minutes from the one holding ``since``: windows
  start on a minute boundary.

The twins keep the same encoded values behind one lock each, with expiry driven by the injected
clock as Redis' own clock drives it in Redis.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, fields
from typing import Any, Final

from gwms_tasks.core.glidein_log import GlideinResult
from gwms_tasks.errors import PermanentError
from gwms_tasks.ports import CompletedGlidein, CompletedStats

Clock = Callable[[], float]

DEFAULT_RECENT_KEEP: Final = 200
"""How many recent outcomes are kept per entry."""
DEFAULT_SEEN_TTL: Final = 8 * 24 * 3600.0
"""Seconds a recorded job id is remembered: beyond any backend's memory of finished jobs."""
MINUTE: Final = 60
STATS_SPAN: Final = 25 * 3600.0
"""Seconds a minute bucket is kept after its last write: a day of windows, plus a margin."""

ENTRY_SCOPE: Final = "entry"
CATEGORY_PREFIX: Final = "category:"
_RESULT_STATS: Final = {
    GlideinResult.OK: "ok",
    GlideinResult.VALIDATION_FAILED: "failed_validation",
    GlideinResult.PAYLOAD_FAILED: "failed_payload",
    GlideinResult.KILLED: "killed",
    GlideinResult.UNKNOWN: "unknown",
}
_COUNT_STATS: Final = frozenset(
    f.name
    for f in fields(CompletedStats)
    if f.name not in ("wall_seconds", "waste_seconds", "by_category")
)
_SECONDS_FIELDS: Final = ("wall_seconds", "validation_seconds", "payload_seconds")


# ----------------------------------------------------------------------------------------------
# codec shared with the Redis adapters


def minute_start(finished_at: float) -> int:
    """The start of the minute bucket holding ``finished_at``."""
    return math.floor(finished_at / MINUTE) * MINUTE


def check_outcome(outcome: CompletedGlidein) -> None:
    """PermanentError naming every field of ``outcome`` that cannot be recorded."""
    found = [
        f"{name} must not be empty" for name in ("job_id", "entry") if not getattr(outcome, name)
    ]
    try:
        GlideinResult(outcome.result)
    except ValueError:
        valid = ", ".join(r.value for r in GlideinResult)
        found.append(f"result {outcome.result!r} is not one of {valid}")
    if not math.isfinite(outcome.finished_at):
        found.append(f"finished_at must be a finite time, got {outcome.finished_at!r}")
    for name in _SECONDS_FIELDS:
        value = getattr(outcome, name)
        if not (math.isfinite(value) and value >= 0):
            found.append(f"{name} must be a number >= 0, got {value!r}")
    if outcome.user_jobs < 0:
        found.append(f"user_jobs must be >= 0, got {outcome.user_jobs}")
    if found:
        raise PermanentError(
            f"completed glidein {outcome.job_id!r} of entry {outcome.entry!r} "
            f"cannot be recorded: {'; '.join(found)}"
        )


def outcome_to_json(outcome: CompletedGlidein) -> str:
    """Canonical JSON of a checked outcome."""
    check_outcome(outcome)
    return json.dumps(asdict(outcome), sort_keys=True, separators=(",", ":"), allow_nan=False)


def outcome_from_json(text: str) -> CompletedGlidein:
    try:
        return CompletedGlidein(**json.loads(text))
    except (json.JSONDecodeError, TypeError) as exc:
        raise PermanentError(f"a stored completed-glidein outcome is malformed: {exc}") from exc


def stat_increments(outcome: CompletedGlidein) -> dict[str, float]:
    """Hash-field increments for one outcome, for the entry scope and its client's scope.

    ``waste_seconds`` is the wall time of a glidein that ran no user job (glideinWMS's badput).
    """
    stats = {
        "completed": 1.0,
        _RESULT_STATS[GlideinResult(outcome.result)]: 1.0,
        "user_jobs": float(outcome.user_jobs),
        "wall_seconds": outcome.wall_seconds,
        "waste_seconds": outcome.wall_seconds if outcome.user_jobs == 0 else 0.0,
    }
    if outcome.failure_category:
        stats[CATEGORY_PREFIX + outcome.failure_category] = 1.0
    scopes = [ENTRY_SCOPE] + ([f"client:{outcome.client}"] if outcome.client else [])
    return {f"{stat}|{scope}": value for scope in scopes for stat, value in stats.items()}


def stats_from_fields(values: Iterable[tuple[str, float]]) -> dict[str, CompletedStats]:
    """Sum ``(field, value)`` pairs (possibly of several buckets) into stats by scope."""
    sums: dict[str, dict[str, float]] = {}
    for name, value in values:
        stat, sep, scope = name.partition("|")
        if not sep:
            raise PermanentError(f"a completed-glidein stats field is malformed: {name!r}")
        by_stat = sums.setdefault(scope, {})
        by_stat[stat] = by_stat.get(stat, 0.0) + value
    return {scope: _stats(by_stat) for scope, by_stat in sums.items()}


def _stats(by_stat: Mapping[str, float]) -> CompletedStats:
    counts = {name: round(by_stat.get(name, 0.0)) for name in _COUNT_STATS}
    categories = {
        stat.removeprefix(CATEGORY_PREFIX): round(value)
        for stat, value in by_stat.items()
        if stat.startswith(CATEGORY_PREFIX)
    }
    return CompletedStats(
        **counts,
        wall_seconds=by_stat.get("wall_seconds", 0.0),
        waste_seconds=by_stat.get("waste_seconds", 0.0),
        by_category=categories,
    )


def check_keep(keep: int) -> int:
    if keep < 1:
        raise PermanentError(f"recent completed glideins to keep must be >= 1, got {keep}")
    return keep


def check_limit(limit: int) -> int:
    if limit < 0:
        raise PermanentError(f"recent completed glideins: limit must be >= 0, got {limit}")
    return limit


def check_counter_values(entry: str, values: Mapping[str, float]) -> dict[str, float]:
    """The increments as floats; PermanentError naming each one that would not keep counters
    monotonic (negative, not a finite number) or has no name."""
    found: list[str] = []
    checked: dict[str, float] = {}
    for name, value in values.items():
        number = _finite(value)
        if not isinstance(name, str) or not name:
            found.append(f"counter name {name!r} must be a non-empty string")
        elif number is None or number < 0:
            found.append(f"{name}: expected a finite number >= 0, got {value!r}")
        else:
            checked[name] = number
    if found:
        raise PermanentError(f"counters of entry {entry!r} not changed: {'; '.join(found)}")
    return checked


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


# ----------------------------------------------------------------------------------------------
# the twins


class MemoryCompletedGlideins:
    """CompletedGlideins in memory (see the module docstring for the layout it mirrors).

    Args:
        clock: drives the expiry of job markers and minute buckets.
        keep: recent outcomes kept per entry.
        seen_ttl: seconds a recorded job id is remembered.
    """

    def __init__(
        self, clock: Clock, keep: int = DEFAULT_RECENT_KEEP, seen_ttl: float = DEFAULT_SEEN_TTL
    ) -> None:
        self._clock, self._keep, self._seen_ttl = clock, check_keep(keep), seen_ttl
        self._mutex = threading.Lock()
        self._seen: dict[tuple[str, str], float] = {}
        self._recent: dict[str, list[str]] = {}
        self._minutes: dict[str, dict[int, tuple[float, dict[str, float]]]] = {}
        self._totals: dict[str, dict[str, float]] = {}
        self._marks: dict[str, float] = {}

    def record(self, outcome: CompletedGlidein) -> bool:
        text = outcome_to_json(outcome)
        increments = stat_increments(outcome)
        bucket = minute_start(outcome.finished_at)
        with self._mutex:
            now = self._clock()
            seen = (outcome.entry, outcome.job_id)
            if self._seen.get(seen, -math.inf) > now:
                return False
            self._seen[seen] = now + self._seen_ttl
            recent = self._recent.setdefault(outcome.entry, [])
            recent.insert(0, text)
            del recent[self._keep :]
            minutes = self._minutes.setdefault(outcome.entry, {})
            for start in [s for s in minutes if s < bucket - STATS_SPAN]:
                del minutes[start]
            values = minutes.get(bucket, (0.0, {}))[1]
            minutes[bucket] = (now + STATS_SPAN, values)
            for target in (values, self._totals.setdefault(outcome.entry, {})):
                for name, value in increments.items():
                    target[name] = target.get(name, 0.0) + value
            self._marks[outcome.entry] = max(
                self._marks.get(outcome.entry, -math.inf), outcome.finished_at
            )
            return True

    def recent(self, entry: str, limit: int = 50) -> list[CompletedGlidein]:
        count = check_limit(limit)
        with self._mutex:
            texts = list(self._recent.get(entry, [])[:count])
        return [outcome_from_json(text) for text in texts]

    def stats(self, entry: str, since: float) -> dict[str, CompletedStats]:
        first = minute_start(since)
        with self._mutex:
            now = self._clock()
            buckets = [
                dict(values)
                for start, (expires, values) in self._minutes.get(entry, {}).items()
                if start >= first and expires > now
            ]
        return stats_from_fields(pair for values in buckets for pair in values.items())

    def totals(self, entry: str) -> dict[str, CompletedStats]:
        with self._mutex:
            values = dict(self._totals.get(entry, {}))
        return stats_from_fields(values.items())

    def last_finished(self, entry: str) -> float | None:
        with self._mutex:
            return self._marks.get(entry)


class MemoryCounters:
    """Counters in memory."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._values: dict[str, dict[str, float]] = {}

    def add(self, entry: str, values: Mapping[str, float]) -> None:
        increments = check_counter_values(entry, values)
        with self._mutex:
            counters = self._values.setdefault(entry, {})
            for name, value in increments.items():
                counters[name] = counters.get(name, 0.0) + value

    def read(self, entry: str) -> dict[str, float]:
        with self._mutex:
            return dict(self._values.get(entry, {}))
