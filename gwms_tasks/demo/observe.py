"""What the demo shows: entries x clients from the factory's state, user jobs from the VO's Redis,
and whether the frontend and the factory agree on the glidein counts.

Agreement, cycle by cycle: each frontend cycle records the idle/running/held glideins it read
from the factory's ``glidefactoryclient`` ad of each entry. The observer keeps every version of
those ads it has seen (by ``UpdateSequenceNumber``, the factory's advertise time in ms); for a
new frontend cycle it takes the version that was current at the cycle's time and compares. A
version advertised and replaced between two samples cannot be checked and is counted as such.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import redis

from gwms_tasks.adapters.redis_completed import RedisCompletedGlideins, RedisCounters
from gwms_tasks.adapters.redis_dashboard import RedisDashboard
from gwms_tasks.adapters.redis_state import RedisEntryState
from gwms_tasks.config_file import read_config
from gwms_tasks.core.ads import AdType
from gwms_tasks.demo.setup import CLIENT, FACTORY, FRONTEND, GLIDEIN, GROUP, SITES, DemoLayout
from gwms_tasks.demo.vo import DONE_KEY
from gwms_tasks.frontend.state import RedisExplanationStore
from gwms_tasks.keys import Keys
from gwms_tasks.ports import CompletedGlideins, EntryState
from gwms_tasks.services.monitoring_decisions import decision_view, is_current

_COUNTS = ("Idle", "Running", "Held")


@dataclass
class Row:
    entry: str
    requested: int = 0
    idle: int = 0
    running: int = 0
    held: int = 0
    completed: int = 0
    ok: int = 0
    failed_validation: int = 0


@dataclass
class Observer:
    """Samples the running demo; :meth:`finished` says when it is over."""

    layout: DemoLayout
    jobs: int
    started: float = field(default_factory=time.monotonic)
    rows: list[Row] = field(default_factory=list)
    jobs_done: int = 0
    jobs_waiting: int = 0
    max_live: int = 0
    checked_cycles: int = 0
    unchecked_cycles: int = 0
    mismatches: list[str] = field(default_factory=list)
    _ads: dict[str, dict[int, tuple[int, int, int]]] = field(default_factory=dict)
    _last_cycle: int = -1
    _monitor_passes: dict[str, float] = field(default_factory=dict)
    _passes_at_drain: dict[str, float] | None = None

    def __post_init__(self) -> None:
        keys = Keys()
        state = redis.Redis.from_url(self.layout.state_url)
        dashboard = redis.Redis.from_url(self.layout.dashboard_url)
        self._vo = redis.Redis.from_url(self.layout.vo_broker_url)
        self._entries = RedisEntryState(state, keys)
        self._completed = RedisCompletedGlideins(state, keys)
        self._counters = RedisCounters(state, keys)
        self._dashboard = RedisDashboard(dashboard, keys, "demo_observer")
        self._explanations = RedisExplanationStore(dashboard, keys, FRONTEND)
        self._loop_delay = read_config(self.layout.factory_config).factory.loop_delay

    @property
    def live_glideins(self) -> int:
        return sum(row.idle + row.running + row.held for row in self.rows)

    @property
    def agreed(self) -> bool:
        return not self.mismatches

    def sample(self) -> None:
        now = time.time()
        self.rows = [
            client_row(self._entries, self._completed, entry, now, self._loop_delay)
            for entry in SITES
        ]
        self.max_live = max(self.max_live, self.live_glideins)
        self.jobs_done = int(self._vo.scard(DONE_KEY))
        self.jobs_waiting = int(self._vo.llen("vo_jobs"))
        self._monitor_passes = {
            entry: self._counters.read(entry).get("cycles:monitor", 0.0) for entry in SITES
        }
        self._record_ads()
        self._compare_frontend()

    def finished(self) -> bool:
        """Every job done, no glidein idle or running (held ones: the factory removes them), and
        the monitor has recorded the glideins that ended.

        A find-work pass may store the empty snapshot before the monitor has parsed the ended
        glideins, so the demo waits for two monitor passes of every entry after the drain (the
        second one surely started after it and records everything that ended before).
        """
        drained = all(row.idle == 0 and row.running == 0 for row in self.rows)
        if not (self.jobs_done >= self.jobs and drained and self.max_live > 0):
            self._passes_at_drain = None
            return False
        if self._passes_at_drain is None:
            self._passes_at_drain = dict(self._monitor_passes)
        return all(
            self._monitor_passes[entry] >= self._passes_at_drain[entry] + 2 for entry in SITES
        )

    def _record_ads(self) -> None:
        for ad in self._dashboard.query(AdType.GLIDEFACTORY_CLIENT):
            attrs = ad.attrs
            if ad.identity != FACTORY or attrs.get("ReqClientName") != CLIENT:
                continue
            entry = str(attrs.get("ReqEntryName", ""))
            counts = tuple(int(attrs.get(f"GlideinMonitorStatus{n}", 0)) for n in _COUNTS)
            sequence = int(attrs.get("UpdateSequenceNumber", 0))
            self._ads.setdefault(entry, {})[sequence] = (counts[0], counts[1], counts[2])

    def _compare_frontend(self) -> None:
        explanation = self._explanations.load(GROUP)
        if explanation is None or explanation.cycle == self._last_cycle:
            return
        self._last_cycle = explanation.cycle
        at_ms = int(explanation.at * 1000)
        for request in explanation.requests:
            entry = request.key.split("@")[0]
            if request.key != f"{entry}@{GLIDEIN}@{FACTORY}":
                continue
            versions = self._ads.get(entry, {})
            before = [seq for seq in versions if seq <= at_ms]
            if not before:
                self.unchecked_cycles += 1
                continue
            factory_said = versions[max(before)]
            seen = request.glideins
            frontend_saw = (seen.idle, seen.running, seen.held)
            if frontend_saw == factory_said:
                self.checked_cycles += 1
            elif len(versions) > 1 and max(before) == max(versions):
                # The ad current at the cycle may be one this observer never saw.
                self.unchecked_cycles += 1
            else:
                self.mismatches.append(
                    f"cycle {explanation.cycle} {entry}: frontend saw {frontend_saw}, "
                    f"factory advertised {factory_said}"
                )


def client_row(
    entries: EntryState, completed: CompletedGlideins, entry: str, now: float, loop_delay: float
) -> Row:
    """The demo client's line of one entry: its glideins, the idle glideins its current
    requests ask for (as the factory's pages count them), the entry's ended glideins."""
    row = Row(entry)
    snapshot = entries.get_snapshot(entry)
    if snapshot is not None:
        counts = snapshot.counts.get(f"client:{CLIENT}", {})
        row.idle = int(counts.get("idle", 0))
        row.running = int(counts.get("running", 0))
        row.held = int(counts.get("held", 0))
    views = [
        decision_view(key, raw)
        for key, raw in entries.decisions(entry).items()
        if is_current(raw, now, loop_delay)
    ]
    row.requested = sum(view.requested_idle for view in views if view.client == CLIENT)
    stats = completed.totals(entry).get("entry")
    if stats is not None:
        row.completed = stats.completed
        row.ok = stats.ok
        row.failed_validation = stats.failed_validation
    return row


def render_table(observer: Observer, clear: bool) -> str:
    """The live table: entries x the demo client, then the user jobs."""
    elapsed = time.monotonic() - observer.started
    head = f"{'entry':10} {'client':14} {'requested':>9} {'idle':>5} {'running':>7} {'held':>5}"
    lines = [
        f"[{elapsed:6.1f} s]  demo factory {FACTORY}, client {CLIENT}",
        head + f" {'completed':>9} {'failed val.':>11}",
    ]
    for row in observer.rows:
        lines.append(
            f"{row.entry:10} {CLIENT:14} {row.requested:>9} {row.idle:>5} {row.running:>7} "
            f"{row.held:>5} {row.completed:>9} {row.failed_validation:>11}"
        )
    lines.append(
        f"user jobs: {observer.jobs_done}/{observer.jobs} done, {observer.jobs_waiting} waiting"
        f"   frontend/factory counts: {observer.checked_cycles} cycles agree, "
        f"{len(observer.mismatches)} disagree"
    )
    text = "\n".join(lines)
    return ("\x1b[H\x1b[2J" + text) if clear else text + "\n"


def render_summary(observer: Observer) -> str:
    completed = sum(row.completed for row in observer.rows)
    failed = sum(row.failed_validation for row in observer.rows)
    lines = [
        "",
        "Summary",
        f"  user jobs done            {observer.jobs_done}/{observer.jobs}",
        f"  glideins completed        {completed} ({failed} failed validation)",
        f"  most glideins at once     {observer.max_live}",
        f"  frontend/factory counts   {observer.checked_cycles} cycles checked, all agree"
        if observer.agreed
        else f"  frontend/factory counts   DISAGREE: {'; '.join(observer.mismatches[:5])}",
        f"  cycles not checkable      {observer.unchecked_cycles}",
        f"  time                      {time.monotonic() - observer.started:.0f} s",
    ]
    return "\n".join(lines)


def summary_data(observer: Observer) -> dict[str, Any]:
    """The summary as JSON data (written to ``<demo dir>/summary.json`` for scripts and tests)."""
    return {
        "jobs": observer.jobs,
        "jobs_done": observer.jobs_done,
        "glideins_completed": sum(row.completed for row in observer.rows),
        "glideins_ok": sum(row.ok for row in observer.rows),
        "failed_validation": sum(row.failed_validation for row in observer.rows),
        "max_live_glideins": observer.max_live,
        "checked_cycles": observer.checked_cycles,
        "unchecked_cycles": observer.unchecked_cycles,
        "mismatches": list(observer.mismatches),
        "seconds": round(time.monotonic() - observer.started, 1),
    }
