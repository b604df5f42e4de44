"""What ``gwms status`` shows: every entry and its clients, from the state store.

Per entry: the glidein counts of its last snapshot (and how fresh they are), the downtime in
force, what its clients request and the limits the counts reached. Per client: its glideins,
what its requests ask for, the limits of its frontend:security-class that are reached, and
the reason of each last decision. Reading only: nothing here writes.

Decision records are read with :func:`decision_view`; what is requested and the limits reached
(:func:`limits_triggered`, those of the entry's latest find-work pass, as its ads advertise
them) count the current decisions only (:func:`is_current`): the readers and the rule the
monitoring pages use, so the CLI and the web show the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from gwms_tasks.core.ads import LimitTriggered
from gwms_tasks.core.config import FactoryConfig
from gwms_tasks.core.downtimes import Downtimes, entry_down_reason
from gwms_tasks.errors import PermanentError
from gwms_tasks.ports import EntrySnapshot, StateStore
from gwms_tasks.services.monitoring_decisions import DECIDED, REJECTED, decision_view, is_current
from gwms_tasks.services.monitoring_models import DecisionView, GlideinCounts, SnapshotView
from gwms_tasks.services.monitoring_view import STALE_LOOPS, flag_texts, limits_triggered

CLIENT_SCOPE = "client:"


@dataclass(frozen=True, slots=True)
class ClientStatus:
    """One client (frontend group) of an entry.

    Attributes:
        client: ClientName.
        counts: its glideins on the entry (last snapshot).
        requested_idle / requested_max: summed over its requests' current last decisions.
        limits_triggered: the reached limits of its frontend:security-class(es).
        reasons: one per request: the decision's reason, ``rejected: <why>`` for a refused
            request.
        decisions: its requests' last decisions.
    """

    client: str
    counts: GlideinCounts
    requested_idle: int
    requested_max: int
    limits_triggered: list[LimitTriggered]
    reasons: list[str]
    decisions: list[DecisionView]


@dataclass(frozen=True, slots=True)
class EntryStatus:
    """One entry.

    Attributes:
        entry / enabled / backend: from the config.
        snapshot: when its glideins were last counted, whether that is stale, the last error.
        downtime: the factory or entry downtime in force (its reason), if any.
        counts: every glidein of the entry.
        requested_idle / requested_max: over all its clients.
        limits_triggered: entry-wide limits reached.
        clients: its clients, by name.
    """

    entry: str
    enabled: bool
    backend: str
    snapshot: SnapshotView
    downtime: str | None
    counts: GlideinCounts
    requested_idle: int
    requested_max: int
    limits_triggered: list[LimitTriggered]
    clients: list[ClientStatus]

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data; limits read ``{"IdleGlideinsPerEntry": "count=N, limit=M"}``."""
        return asdict(self) | {
            "limits_triggered": flag_texts(self.limits_triggered),
            "clients": [
                asdict(client) | {"limits_triggered": flag_texts(client.limits_triggered)}
                for client in self.clients
            ],
        }


def factory_status(
    state: StateStore,
    config: FactoryConfig,
    downtimes: Downtimes,
    now: float,
    entries: Sequence[str] | None = None,
) -> list[EntryStatus]:
    """The status of ``entries`` (every configured entry when None), in config order.

    Raises:
        PermanentError: an entry is not in the config.
    """
    names = list(config.entries) if entries is None else list(entries)
    unknown = [name for name in names if name not in config.entries]
    if unknown:
        known = ", ".join(config.entries)
        raise PermanentError(f"unknown entry {', '.join(unknown)} (configured: {known})")
    return [entry_status(state, config, name, downtimes, now) for name in names]


def entry_status(
    state: StateStore, config: FactoryConfig, entry: str, downtimes: Downtimes, now: float
) -> EntryStatus:
    """The status of one configured entry."""
    snapshot = state.entries.get_snapshot(entry)
    records = state.entries.decisions(entry)
    loop_delay = config.factory.loop_delay
    views = sorted(
        (
            replace(decision_view(key, raw), current=is_current(raw, now, loop_delay))
            for key, raw in records.items()
        ),
        key=lambda view: (view.client, view.work_key),
    )
    flags = limits_triggered(r for r in records.values() if is_current(r, now, loop_delay))
    clients = [
        _client_status(name, snapshot, [v for v in views if v.client == name], flags)
        for name in _client_names(snapshot, views)
    ]
    down = entry_down_reason(downtimes, now, entry)
    cfg = config.entries[entry]
    return EntryStatus(
        entry=entry,
        enabled=cfg.enabled,
        backend=cfg.backend.kind.value,
        snapshot=freshness(snapshot, now, config.factory.loop_delay),
        downtime=None if down is None else down.value,
        counts=_counts(snapshot, "entry"),
        requested_idle=sum(c.requested_idle for c in clients),
        requested_max=sum(c.requested_max for c in clients),
        limits_triggered=[flag for flag in flags if flag.frontend_key is None],
        clients=clients,
    )


def freshness(snapshot: EntrySnapshot | None, now: float, loop_delay: float) -> SnapshotView:
    """How old the counts are; stale after :data:`STALE_LOOPS` loops, or after a failed query."""
    if snapshot is None or snapshot.taken_at <= 0:
        return SnapshotView(None, None, True, None if snapshot is None else snapshot.error)
    age = max(0.0, now - snapshot.taken_at)
    stale = age > STALE_LOOPS * loop_delay or snapshot.error is not None
    return SnapshotView(snapshot.taken_at, age, stale, snapshot.error)


def _client_names(snapshot: EntrySnapshot | None, views: Iterable[DecisionView]) -> list[str]:
    names = {view.client for view in views if view.client}
    if snapshot is not None:
        names |= {
            s.removeprefix(CLIENT_SCOPE) for s in snapshot.counts if s.startswith(CLIENT_SCOPE)
        }
    return sorted(names)


def _client_status(
    client: str,
    snapshot: EntrySnapshot | None,
    views: Sequence[DecisionView],
    flags: Sequence[LimitTriggered],
) -> ClientStatus:
    classes = {view.frontend_key for view in views if view.frontend_key}
    decided = [view for view in views if view.outcome == DECIDED and view.current]
    return ClientStatus(
        client=client,
        counts=_counts(snapshot, f"{CLIENT_SCOPE}{client}"),
        requested_idle=sum(view.requested_idle for view in decided),
        requested_max=sum(view.requested_max for view in decided),
        limits_triggered=[flag for flag in flags if flag.frontend_key in classes],
        reasons=[_reason(view) for view in views],
        decisions=list(views),
    )


def _reason(view: DecisionView) -> str:
    return f"rejected: {view.reason}" if view.outcome == REJECTED else view.reason


def _counts(snapshot: EntrySnapshot | None, scope: str) -> GlideinCounts:
    return GlideinCounts.from_mapping(None if snapshot is None else snapshot.counts.get(scope))
