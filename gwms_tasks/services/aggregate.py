"""Factory-wide monitoring totals, one time-series sample per aggregation run.

The sample is stored under the pseudo-entry name :data:`FACTORY_SERIES` (``_factory``), so the
pages read it with ``TimeSeries.series("_factory", ...)`` like any entry's (the JSON API serves
it at ``/api/entries/_factory/series``). The config refuses an entry of that name
(:data:`~gwms_tasks.core.config.RESERVED_ENTRY_NAMES`), so no entry shares the series.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Final

from gwms_tasks.core.config import RESERVED_ENTRY_NAMES
from gwms_tasks.ports import CompletedStats
from gwms_tasks.services.deps import FactoryDeps

(FACTORY_SERIES,) = RESERVED_ENTRY_NAMES
"""The pseudo-entry the factory-wide samples are stored under (the one reserved name)."""
WINDOW: Final = 3600.0
"""Completed-glidein statistics are summed over this many seconds back."""
COUNTS: Final = ("idle", "running", "held", "total")
_COMPLETED: Final = tuple(f.name for f in fields(CompletedStats) if f.name != "by_category")


def aggregate(deps: FactoryDeps) -> dict[str, float]:
    """Sum the enabled entries' last snapshots and last hour of completed glideins.

    Values: ``entries`` (enabled), ``entries_query_failed`` (whose last glidein query failed;
    their last good counts are still summed), ``idle``/``running``/``held``/``total``, and the
    :class:`CompletedStats` counts of the last hour as ``completed_1h``, ``ok_1h``, ...,
    ``waste_seconds_1h``.

    Returns:
        The values, as stored in the ``_factory`` series at the current time.
    """
    entries = sorted(deps.config.enabled_entries())
    now = deps.clock()
    values = dict.fromkeys((*COUNTS, *(f"{name}_1h" for name in _COMPLETED)), 0.0)
    values |= {"entries": float(len(entries)), "entries_query_failed": 0.0}
    for entry in entries:
        snapshot = deps.state.entries.get_snapshot(entry)
        if snapshot is not None:
            if snapshot.error is not None:
                values["entries_query_failed"] += 1
            counts = snapshot.counts.get("entry", {})
            for name in COUNTS:
                values[name] += counts.get(name, 0)
        stats = deps.state.completed.stats(entry, now - WINDOW).get("entry", CompletedStats())
        for name in _COMPLETED:
            values[f"{name}_1h"] += getattr(stats, name)
    deps.state.series.add(FACTORY_SERIES, now, values)
    return values
