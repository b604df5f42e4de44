"""``/metrics``: the factory's state in the Prometheus text format, built on every scrape.

A custom collector reads the state ports through the monitoring read model (nothing is kept in
the web process, so every web server of a fleet reports the same numbers): each entry's
snapshot and decisions once per scrape (:func:`~.monitoring_view.read_entry`). Per-task
metrics (run times, failures of Celery tasks) stay Flower's.

Families (labels in braces):

* ``gwms_entry_glideins{entry,status}`` and ``gwms_client_glideins{entry,client,status}``:
  glideins by ``idle`` / ``running`` / ``held`` at the last glidein query; the ``_detailed``
  variants split idle into wait / pending / stage_in / idle_other and add stage_out;
* ``gwms_requested_idle_glideins`` / ``gwms_requested_max_glideins{entry,client}``: over the
  current decisions (those of requests still there);
* ``gwms_entry_limit{entry,limit}`` and ``gwms_limit_triggered{entry,limit,frontend}``
  (frontend is ``frontend:security_class`` for per-class limits, empty otherwise);
* ``gwms_requests{entry,reason}``: current requests whose last decision had that reason;
* ``gwms_decisions_total{entry,reason}``, ``gwms_glideins_submitted_total``,
  ``..._removed_total``, ``..._released_total``, ``gwms_failed_submits_total``,
  ``gwms_glidein_query_failures_total``, ``gwms_requests_rejected_total``,
  ``gwms_find_work_failed_closed_total{entry}`` and the ``gwms_client_*`` per-client variants:
  the monotonic counters of the entry (fields of the Counters port);
* ``gwms_failed_submits{entry}``: failed submits waiting for a retry;
* ``gwms_glideins_completed_total{entry,result}``, ``gwms_client_glideins_completed_total``,
  ``gwms_glidein_validation_failures_total{entry,category}``, wall, waste and user jobs;
* ``gwms_cycle_duration_seconds{entry,task}``: a summary (``_count``, ``_sum``) of task cycles;
* ``gwms_entry_snapshot_age_seconds``, ``gwms_entry_stale``, ``gwms_entry_query_failed``,
  ``gwms_entry_in_downtime``, ``gwms_entry_enabled`` (gauges by entry).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Final

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from gwms_tasks.core.ads import LimitTriggered
from gwms_tasks.ports import CompletedStats
from gwms_tasks.services.monitoring_models import (
    STATUS_FIELDS,
    EntrySummary,
    GlideinCounts,
)
from gwms_tasks.services.monitoring_view import (
    EntryReads,
    MonitoringSources,
    entry_summary,
    limits_triggered,
    read_entry,
)

MAIN_STATUSES: Final = ("idle", "running", "held")
RESULTS: Final = ("ok", "failed_validation", "failed_payload", "killed", "unknown")
EVENT_COUNTERS: Final = {
    "submitted": ("glideins_submitted", "Glideins submitted."),
    "removed": ("glideins_removed", "Glideins removed."),
    "released": ("glideins_released", "Held glideins released."),
    "failed_submits": ("failed_submits", "Submissions that failed for good."),
    "query_failures": ("glidein_query_failures", "Glidein queries of the entry that failed."),
    "rejected": ("requests_rejected", "Requests refused by validation, per find-work pass."),
    "failed_closed": ("find_work_failed_closed", "Find-work passes that failed closed."),
}
CYCLE_SECONDS: Final = "cycle_seconds:"
CYCLES: Final = "cycles:"
DECISION: Final = "decision:"


class StateCollector(Collector):
    """Every ``gwms_*`` family, read from the sources at collection time."""

    def __init__(self, sources: MonitoringSources) -> None:
        self._sources = sources

    def collect(self) -> Iterator[Metric]:
        sources = self._sources
        now = sources.clock()
        downtimes = sources.downtimes()
        families = _Families()
        for entry in sources.config.entries:
            reads = read_entry(sources, entry, now, hour=False)
            families.add_entry(
                entry_summary(sources, reads, downtimes), limits_triggered(reads.current_records)
            )
            families.add_clients(reads)
            families.add_counters(entry, sources.counters.read(entry))
            families.add_completed(entry, sources.completed.totals(entry))
        for entry, count in Counter(f.entry for f in sources.state.failed.list()).items():
            families.failed_waiting.add_metric([entry], count)
        yield from families.all()


class _Families:
    """The metric families of one scrape, filled entry by entry."""

    def __init__(self) -> None:
        g, c = GaugeMetricFamily, CounterMetricFamily
        e, ec = ["entry"], ["entry", "client"]
        self.entry_glideins = g(
            "gwms_entry_glideins", "Glideins of the entry.", labels=[*e, "status"]
        )
        self.entry_detailed = g(
            "gwms_entry_glideins_detailed", "Glideins by detailed status.", labels=[*e, "status"]
        )
        self.client_glideins = g(
            "gwms_client_glideins", "Glideins of a client on the entry.", labels=[*ec, "status"]
        )
        self.client_detailed = g(
            "gwms_client_glideins_detailed",
            "Glideins of a client by detailed status.",
            labels=[*ec, "status"],
        )
        self.requested_idle = g(
            "gwms_requested_idle_glideins", "Idle glideins requested.", labels=ec
        )
        self.requested_max = g(
            "gwms_requested_max_glideins", "Maximum glideins requested.", labels=ec
        )
        self.limit = g("gwms_entry_limit", "Configured limit of the entry.", labels=[*e, "limit"])
        self.triggered = g(
            "gwms_limit_triggered",
            "1 for each limit reached at the last glidein query.",
            labels=[*e, "limit", "frontend"],
        )
        self.requests = g(
            "gwms_requests", "Requests by reason of their last decision.", labels=[*e, "reason"]
        )
        self.decisions = c("gwms_decisions", "Decisions taken, by reason.", labels=[*e, "reason"])
        self.events = {
            name: c(f"gwms_{metric}", doc, labels=e)
            for name, (metric, doc) in EVENT_COUNTERS.items()
        }
        self.client_events = {
            name: c(f"gwms_client_{metric}", doc, labels=ec)
            for name, (metric, doc) in EVENT_COUNTERS.items()
        }
        self.failed_waiting = g(
            "gwms_failed_submits", "Failed submits waiting for a retry.", labels=e
        )
        self.completed = c(
            "gwms_glideins_completed", "Glideins that ended, by result.", labels=[*e, "result"]
        )
        self.client_completed = c(
            "gwms_client_glideins_completed",
            "Glideins of a client that ended.",
            labels=[*ec, "result"],
        )
        self.categories = c(
            "gwms_glidein_validation_failures",
            "Failed glideins by category.",
            labels=[*e, "category"],
        )
        self.wall = c("gwms_glidein_wall_seconds", "Wall time of ended glideins.", labels=e)
        self.waste = c(
            "gwms_glidein_waste_seconds", "Wall time of glideins that ran no job.", labels=e
        )
        self.user_jobs = c("gwms_glidein_user_jobs", "User jobs run by ended glideins.", labels=e)
        self.cycles = SummaryMetricFamily(
            "gwms_cycle_duration_seconds", "Duration of task cycles.", labels=[*e, "task"]
        )
        self.age = g("gwms_entry_snapshot_age_seconds", "Age of the glidein counts.", labels=e)
        self.stale = g("gwms_entry_stale", "1 when the counts are stale (submits stop).", labels=e)
        self.query_failed = g("gwms_entry_query_failed", "1 when the last query failed.", labels=e)
        self.down = g("gwms_entry_in_downtime", "1 during a downtime.", labels=e)
        self.enabled = g("gwms_entry_enabled", "1 when the entry is enabled.", labels=e)

    def all(self) -> Iterator[Metric]:
        for value in vars(self).values():
            if isinstance(value, dict):
                yield from value.values()
            else:
                yield value

    def add_entry(self, summary: EntrySummary, flags: list[LimitTriggered]) -> None:
        entry = summary.name
        _add_counts(self.entry_glideins, self.entry_detailed, [entry], summary.counts)
        for bound in ("max_idle", "max_held", "max_glideins"):
            self.limit.add_metric([entry, bound], getattr(summary.limits, bound))
        for flag in flags:
            self.triggered.add_metric([entry, flag.limit.value, flag.frontend_key or ""], 1)
        snapshot = summary.snapshot
        if snapshot.age_seconds is not None:
            self.age.add_metric([entry], snapshot.age_seconds)
        self.stale.add_metric([entry], int(snapshot.stale))
        self.query_failed.add_metric([entry], int(snapshot.error is not None))
        self.down.add_metric([entry], int(summary.downtime is not None))
        self.enabled.add_metric([entry], int(summary.enabled))

    def add_clients(self, reads: EntryReads) -> None:
        entry = reads.entry
        decisions = [d for d in reads.decisions if d.current]
        scopes = {} if reads.snapshot is None else reads.snapshot.counts
        for scope, raw in scopes.items():
            if scope.startswith("client:"):
                labels = [entry, scope.removeprefix("client:")]
                _add_counts(
                    self.client_glideins,
                    self.client_detailed,
                    labels,
                    GlideinCounts.from_mapping(raw),
                )
        requested: dict[str, tuple[int, int]] = {}
        for decision in decisions:
            idle, most = requested.get(decision.client, (0, 0))
            requested[decision.client] = (
                idle + decision.requested_idle,
                most + decision.requested_max,
            )
        for client, (idle, most) in requested.items():
            self.requested_idle.add_metric([entry, client], idle)
            self.requested_max.add_metric([entry, client], most)
        for reason, count in Counter(d.reason for d in decisions).items():
            self.requests.add_metric([entry, reason], count)

    def add_counters(self, entry: str, counters: dict[str, float]) -> None:
        cycles: dict[str, list[float]] = {}
        for field, value in counters.items():
            if field.startswith(DECISION):
                self.decisions.add_metric([entry, field.removeprefix(DECISION)], value)
            elif field in self.events:
                self.events[field].add_metric([entry], value)
            elif field.startswith(CYCLE_SECONDS):
                cycles.setdefault(field.removeprefix(CYCLE_SECONDS), [0.0, 0.0])[1] = value
            elif field.startswith(CYCLES):
                cycles.setdefault(field.removeprefix(CYCLES), [0.0, 0.0])[0] = value
            elif field.startswith("client:"):
                client, _, name = field.removeprefix("client:").rpartition(":")
                if client and name in self.client_events:
                    self.client_events[name].add_metric([entry, client], value)
        for task, (count, seconds) in sorted(cycles.items()):
            self.cycles.add_metric([entry, task], count_value=int(count), sum_value=seconds)

    def add_completed(self, entry: str, totals: dict[str, CompletedStats]) -> None:
        for scope, stats in totals.items():
            if scope == "entry":
                for result in RESULTS:
                    self.completed.add_metric([entry, result], _result(stats, result))
                for category, count in stats.by_category.items():
                    self.categories.add_metric([entry, category], count)
                self.wall.add_metric([entry], stats.wall_seconds)
                self.waste.add_metric([entry], stats.waste_seconds)
                self.user_jobs.add_metric([entry], stats.user_jobs)
            elif scope.startswith("client:"):
                client = scope.removeprefix("client:")
                for result in RESULTS:
                    self.client_completed.add_metric(
                        [entry, client, result], _result(stats, result)
                    )


def _result(stats: CompletedStats, result: str) -> int:
    value = getattr(stats, result)
    return value if isinstance(value, int) else 0


def _add_counts(
    main: GaugeMetricFamily, detailed: GaugeMetricFamily, labels: list[str], counts: GlideinCounts
) -> None:
    for status in MAIN_STATUSES:
        main.add_metric([*labels, status], getattr(counts, status))
    for status in STATUS_FIELDS:
        detailed.add_metric([*labels, status], getattr(counts, status))
