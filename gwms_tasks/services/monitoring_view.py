"""The read model of the monitoring pages, the JSON API and ``/metrics``.

Every function reads the state ports of :class:`MonitoringSources` and returns the plain values of
:mod:`gwms_tasks.services.monitoring_models`; nothing here writes. The time comes from the
sources' clock, so a page is computed for one instant.

Where numbers come from:

* glidein counts: the entry's last glidein snapshot (written by monitor and find-work); stale
  when older than :data:`STALE_LOOPS` loop delays or when the last query failed;
* requested idle / max: the last decision of each request of the entry, if it is current
  (:func:`~.monitoring_decisions.is_current`, the rule the advertise step counts by; rejected
  and failed-closed requests request nothing);
* limits triggered: the flags the entry's ads carry (``GlideinMonitorStatus_GlideFactoryLimit*``
  of the reference §1.3), from the counts and submissions of its latest current find-work pass;
* completed / failed in the last hour: the completed-glidein statistics ("failed" is every
  outcome but ``ok``).

A page reads each entry's records once (:func:`read_entry`) and builds every part from them.
The factory-wide samples of :mod:`.aggregate` are served as the series of
:data:`~.aggregate.FACTORY_SERIES`.

The frontend page is in :mod:`.monitoring_frontend`, the reading of decision records in
:mod:`.monitoring_decisions`, the values returned in :mod:`.monitoring_models`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from gwms_tasks.core.ads import LimitTriggered
from gwms_tasks.core.config import FactoryConfig
from gwms_tasks.core.downtimes import Downtimes, down_reason, entry_downtime
from gwms_tasks.core.limits import GlideinLimits
from gwms_tasks.core.model import Glidein, StatusCounts
from gwms_tasks.errors import GwmsError
from gwms_tasks.ports import (
    CompletedGlideins,
    CompletedStats,
    Counters,
    CredentialIndex,
    Dashboard,
    EntrySnapshot,
    JsonDict,
    StateStore,
)
from gwms_tasks.services.advertise import triggered_limits as advertised_limits
from gwms_tasks.services.aggregate import FACTORY_SERIES
from gwms_tasks.services.monitoring_decisions import decision_view, is_current
from gwms_tasks.services.monitoring_models import (
    ClientView,
    CompletedRow,
    CompletedStatsView,
    DecisionView,
    DowntimeView,
    EntryDetail,
    EntrySummary,
    FailedSubmitRow,
    FailedSubmitsView,
    GlideinCounts,
    GlideinList,
    GlideinRow,
    LimitsView,
    Overview,
    SeriesView,
    SnapshotView,
)

log = logging.getLogger(__name__)

STALE_LOOPS: Final = 3
"""An entry's counts are stale after this many loop delays without a successful query."""
HOUR: Final = 3600.0
RECENT_COMPLETED: Final = 50


class SeriesRange:
    """The windows the entry charts offer: name -> (resolution, seconds back)."""

    WINDOWS: Final[Mapping[str, tuple[str, float]]] = {
        "hour": ("minute", HOUR),
        "day": ("minute", 24 * HOUR),
        "month": ("hour", 31 * 24 * HOUR),
    }


@dataclass(frozen=True)
class MonitoringSources:
    """Everything the monitoring read model reads.

    Attributes:
        config: the factory configuration (entries, limits, frontends).
        state: entry snapshots, decisions, failed submits, time series.
        completed: completed-glidein outcomes and statistics.
        counters: monotonic per-entry counters (for ``/metrics``).
        credentials: metadata of the credentials frontends sent.
        downtimes: the downtimes in force (read on every page: operators edit them live).
        clock: epoch seconds.
        dashboard: where the factory's ``glidefactoryclient`` ads can be read back, if any.
        retry: the retry service for a failed submit (by id), if this server may retry.
        glideins: the live glideins of an entry from its grid backend, if this server may
            query the backends.
        dashboard_identity: the authenticated identity of this factory's own ads on the
            dashboard; when set, monitoring ads written by anyone else are ignored.
    """

    config: FactoryConfig
    state: StateStore
    completed: CompletedGlideins
    counters: Counters
    credentials: CredentialIndex
    downtimes: Callable[[], Downtimes]
    clock: Callable[[], float]
    dashboard: Dashboard | None = None
    retry: Callable[[str], JsonDict] | None = None
    glideins: Callable[[str], list[Glidein]] | None = None
    dashboard_identity: str | None = None


class UnknownEntry(LookupError):
    """The entry is not in the configuration."""


@dataclass(frozen=True)
class EntryReads:
    """One entry's stored records, read once and shared by every part of a page or scrape.

    Attributes:
        entry: the entry name.
        now: the instant the views are computed for.
        snapshot: its last glidein snapshot, if any.
        records: the last decision record of each request, by work key.
        decisions: their views by client then work key, ``current`` per
            :func:`~.monitoring_decisions.is_current`.
        hour: completed-glidein statistics of the last hour by scope (``entry``,
            ``client:<name>``); empty when not read (``/metrics`` exports the totals instead).
    """

    entry: str
    now: float
    snapshot: EntrySnapshot | None
    records: Mapping[str, JsonDict]
    decisions: list[DecisionView]
    hour: Mapping[str, CompletedStats]

    @property
    def current_records(self) -> list[JsonDict]:
        """The records of the current decisions (those of requests still there)."""
        return [self.records[d.work_key] for d in self.decisions if d.current]


def read_entry(
    sources: MonitoringSources, entry: str, now: float, *, hour: bool = True
) -> EntryReads:
    """Read the snapshot, decisions and (when ``hour``) last-hour statistics of ``entry``."""
    records = sources.state.entries.decisions(entry)
    return EntryReads(
        entry=entry,
        now=now,
        snapshot=sources.state.entries.get_snapshot(entry),
        records=records,
        decisions=_views(records, now, sources.config.factory.loop_delay),
        hour=sources.completed.stats(entry, now - HOUR) if hour else {},
    )


def overview(sources: MonitoringSources) -> Overview:
    """The factory overview: one summary per configured entry, plus factory totals."""
    now = sources.clock()
    downtimes = sources.downtimes()
    summaries = [
        entry_summary(sources, read_entry(sources, name, now), downtimes)
        for name in sources.config.entries
    ]
    totals = GlideinCounts.of(_sum_counts(s.counts.status_counts() for s in summaries))
    fac = sources.config.factory
    return Overview(
        factory=fac.name,
        glidein=fac.glidein_name,
        generated_at=now,
        entries=summaries,
        totals=totals,
        requested_idle=sum(s.requested_idle for s in summaries),
        requested_max=sum(s.requested_max for s in summaries),
        completed_last_hour=sum(s.completed_last_hour for s in summaries),
        failed_last_hour=sum(s.failed_last_hour for s in summaries),
        failed_submits=len(sources.state.failed.list()),
        frontends=sorted(sources.config.frontends),
    )


def entry_summary(
    sources: MonitoringSources, reads: EntryReads, downtimes: Downtimes
) -> EntrySummary:
    """The overview line of one configured entry, from its records read once."""
    entry, now = reads.entry, reads.now
    cfg = sources.config.entries[entry]
    hour = CompletedStatsView.of(reads.hour.get("entry"))
    site = cfg.attributes.get("GLIDEIN_Site")
    limits = sources.config.entry_limits(entry)
    current = [d for d in reads.decisions if d.current]
    return EntrySummary(
        name=entry,
        enabled=cfg.enabled,
        site=str(site.value) if site is not None else "",
        backend=str(cfg.backend.kind),
        counts=_scope_counts(reads.snapshot, "entry"),
        requested_idle=sum(d.requested_idle for d in current),
        requested_max=sum(d.requested_max for d in current),
        limits=_limits(limits.per_entry),
        completed_last_hour=hour.completed,
        failed_last_hour=hour.failed,
        downtime=_downtime(downtimes, now, entry),
        limits_triggered=flag_texts(limits_triggered(reads.current_records)),
        snapshot=_freshness(reads.snapshot, now, sources.config.factory.loop_delay),
    )


def entry_detail(sources: MonitoringSources, entry: str) -> EntryDetail:
    """The entry page.

    Raises:
        UnknownEntry: the entry is not configured.
    """
    if entry not in sources.config.entries:
        raise UnknownEntry(entry)
    now = sources.clock()
    reads = read_entry(sources, entry, now)
    summary = entry_summary(sources, reads, sources.downtimes())
    snapshot, decisions, stats = reads.snapshot, reads.decisions, reads.hour
    clients = sorted(
        {d.client for d in decisions}
        | {scope.removeprefix("client:") for scope in _scopes(snapshot, "client:")}
        | {scope.removeprefix("client:") for scope in stats if scope.startswith("client:")}
    )
    return EntryDetail(
        summary=summary,
        generated_at=now,
        clients=[_client_view(client, snapshot, decisions, stats) for client in clients],
        completed_last_hour=CompletedStatsView.of(stats.get("entry")),
        recent_completed=[
            CompletedRow.of(outcome)
            for outcome in sources.completed.recent(entry, limit=RECENT_COMPLETED)
        ],
        failed_submits=[row for row in failed_submits(sources).failed if row.entry == entry],
    )


def entry_series(sources: MonitoringSources, entry: str, window: str) -> SeriesView:
    """The entry's samples over ``window`` (see :class:`SeriesRange`), column by column.

    ``entry`` may also be :data:`~.aggregate.FACTORY_SERIES`: the factory-wide samples.

    Raises:
        UnknownEntry: the entry is not configured.
        ValueError: ``window`` is not one of the ranges.
    """
    if entry not in sources.config.entries and entry != FACTORY_SERIES:
        raise UnknownEntry(entry)
    if window not in SeriesRange.WINDOWS:
        raise ValueError(f"unknown range {window!r} (use {', '.join(SeriesRange.WINDOWS)})")
    resolution, back = SeriesRange.WINDOWS[window]
    since = sources.clock() - back
    points = sources.state.series.series(entry, resolution, since)
    names = sorted({name for _, values in points for name in values})
    return SeriesView(
        entry=entry,
        range=window,
        resolution=resolution,
        since=since,
        times=[t for t, _ in points],
        values={name: [values.get(name) for _, values in points] for name in names},
    )


def glidein_list(sources: MonitoringSources, entry: str) -> GlideinList:
    """The live glideins of an entry; fails soft (a message) when they cannot be read."""
    if sources.glideins is None:
        return GlideinList(False, "this web server does not query the grid backends", [])
    try:
        glideins = sources.glideins(entry)
    except GwmsError as exc:
        return GlideinList(False, f"the glidein query failed: {exc}", [])
    site = sources.config.entries[entry].attributes.get("GLIDEIN_Site")
    return GlideinList(
        True,
        None,
        [
            GlideinRow(
                job_id=g.job_id,
                client=g.client,
                frontend=g.frontend,
                status=g.status.name.lower(),
                since=g.entered_current_status,
                hold_reason=g.hold_reason,
                site=str(site.value) if site is not None else "",
            )
            for g in glideins
        ],
    )


def failed_submits(sources: MonitoringSources) -> FailedSubmitsView:
    """Every failed submit, oldest first."""
    rows = [
        FailedSubmitRow(
            failed_id=f.failed_id,
            submit_key=f.submit_key,
            entry=f.entry,
            client=f.client,
            count=f.count,
            reason=f.reason,
            failed_at=f.failed_at,
            retries=f.retries,
        )
        for f in sources.state.failed.list()
    ]
    return FailedSubmitsView(sources.clock(), rows, sources.retry is not None)


def limits_triggered(decisions: Iterable[Mapping[str, Any]]) -> list[LimitTriggered]:
    """The limits the latest find-work pass among ``decisions`` reached, as the ads advertise
    them (:func:`gwms_tasks.services.advertise.triggered_limits`): entry-wide flags first.

    Pass the current decisions (:attr:`EntryReads.current_records`): an old pass is over.
    """
    timed = [d for d in decisions if isinstance(d.get("at"), int | float)]
    try:
        entry_flags, class_flags = advertised_limits(timed)
    except GwmsError as exc:
        log.warning("cannot compute the triggered limits: %s", exc)
        return []
    return [*entry_flags, *(flag for group in class_flags.values() for flag in group)]


def flag_name(flag: LimitTriggered) -> str:
    """The §1.3 flag suffix: ``IdleGlideinsPerEntry``, ``IdlePerClass_<frontend:class>``."""
    return flag.limit.value + ("" if flag.frontend_key is None else f"_{flag.frontend_key}")


def flag_texts(flags: Iterable[LimitTriggered]) -> dict[str, str]:
    """The flags as the pages and ``gwms status --json`` show them: name -> ``count=N, limit=M``."""
    return {flag_name(flag): flag.text for flag in flags}


def entry_decisions(sources: MonitoringSources, entry: str) -> list[DecisionView]:
    """The last decision of every request of an entry, by client then work key."""
    stored = sources.state.entries.decisions(entry)
    return _views(stored, sources.clock(), sources.config.factory.loop_delay)


def _views(stored: Mapping[str, JsonDict], now: float, loop_delay: float) -> list[DecisionView]:
    """Decision views, ``current`` by the rule every reader of decisions uses."""
    views = [
        replace(decision_view(key, raw), current=is_current(raw, now, loop_delay))
        for key, raw in stored.items()
    ]
    return sorted(views, key=lambda d: (d.client, d.work_key))


def _client_view(
    client: str,
    snapshot: EntrySnapshot | None,
    decisions: Sequence[DecisionView],
    stats: Mapping[str, CompletedStats],
) -> ClientView:
    mine = [d for d in decisions if d.client == client]
    return ClientView(
        client=client,
        counts=_scope_counts(snapshot, f"client:{client}"),
        requested_idle=sum(d.requested_idle for d in mine if d.current),
        requested_max=sum(d.requested_max for d in mine if d.current),
        decisions=mine,
        completed_last_hour=CompletedStatsView.of(stats.get(f"client:{client}")),
    )


def _scope_counts(snapshot: EntrySnapshot | None, scope: str) -> GlideinCounts:
    if snapshot is None:
        return GlideinCounts()
    return GlideinCounts.from_mapping(snapshot.counts.get(scope))


def _scopes(snapshot: EntrySnapshot | None, prefix: str) -> set[str]:
    return set() if snapshot is None else {s for s in snapshot.counts if s.startswith(prefix)}


def _sum_counts(counts: Iterable[StatusCounts]) -> StatusCounts:
    total = StatusCounts()
    for item in counts:
        total = total.plus(item)
    return total


def _freshness(snapshot: EntrySnapshot | None, now: float, loop_delay: float) -> SnapshotView:
    if snapshot is None:
        return SnapshotView(None, None, True, None)
    taken = snapshot.taken_at if snapshot.taken_at > 0 else None
    age = None if taken is None else max(0.0, now - taken)
    stale = age is None or age > STALE_LOOPS * loop_delay or snapshot.error is not None
    return SnapshotView(taken, age, stale, snapshot.error)


def _downtime(downtimes: Downtimes, now: float, entry: str) -> DowntimeView | None:
    period = entry_downtime(downtimes, now, entry)
    if period is None:
        return None
    return DowntimeView(down_reason(period).value, period.start, period.end, period.comment)


def _limits(limits: GlideinLimits) -> LimitsView:
    return LimitsView(limits.max_idle, limits.max_held, limits.max_glideins)
