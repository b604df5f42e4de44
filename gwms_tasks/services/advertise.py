"""Advertise: the factory's ads on the dashboard (reference §1.1-§1.3).

:func:`advertise_entry` publishes one entry's ``glidefactory`` ad and one ``glidefactoryclient``
ad per client it serves; :func:`advertise_global` publishes the ``glidefactoryglobal`` ad and
withdraws the ads of entries that left the configuration. Both read through ports only: the
config, the keyring, the downtimes, the staging index, and what find-work left in the state
store (the entry's last glidein snapshot and the last decision of every request).

Choices where glideinWMS leaves room:

* **Sequence numbers** are the clock in milliseconds: monotonic for one writer without any
  stored counter, and shared by every worker of a fleet advertising the same ad.
* **Live clients.** A client gets a glidefactoryclient ad while it has glideins on the entry or a
  current decision (:func:`~.monitoring_decisions.is_current`: from the last few loops, as
  find-work decides every loop for each request it finds). Rejected requests are not clients.
  Ads of the others are invalidated.
* **Triggered limits** are recomputed from the latest find-work pass only (its decisions carry
  the counts and limits they used, plus what they submitted), never remembered from older ones,
  and a client's ad shows the entry-wide flags and those of its own frontend:security-class
  only, so one frontend does not learn the names of the others.
* **No staging area, no ads.** Without a built staging area (or one lacking the entry) no
  glidein could start: the entry is not advertised, and find-work refuses to submit for it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from gwms_tasks.core.ads import (
    AdType,
    AdvertisedLimits,
    FactoryClientAd,
    FactoryEntryAd,
    FactoryGlobalAd,
    FactoryLimit,
    FactoryPublicKey,
    FactoryWeb,
    LimitTriggered,
    Requested,
    entry_ad_name,
    monitor_totals,
    monitor_values,
)
from gwms_tasks.core.classad_text import AdValue, string_literal
from gwms_tasks.core.config_entry import EntryConfig
from gwms_tasks.core.crypto import FactoryKey
from gwms_tasks.core.downtimes import entry_downtime
from gwms_tasks.core.model import StatusCounts
from gwms_tasks.ports import JsonDict
from gwms_tasks.services.deps import FactoryDeps
from gwms_tasks.services.monitoring_decisions import is_current

log = logging.getLogger(__name__)

CLIENT_SCOPE = "client:"
_COUNT_FIELDS = tuple(f.name for f in fields(StatusCounts))


def advertise_entry(
    deps: FactoryDeps, entry: str, *, daemon_start_time: int | None = None
) -> dict[str, Any]:
    """Publish the ads of one entry; withdraw them when the entry is not (or no longer) served.

    Args:
        deps: the factory's ports.
        entry: the entry name.
        daemon_start_time: ``DaemonStartTime`` of the ads (the advertising worker's start);
            the current time when not given.

    Returns:
        A summary for the task result: status (``advertised``, ``disabled``, ``not_configured``,
        ``no_staging``), the clients advertised, and the client ads invalidated.
    """
    now = deps.clock()
    fac = deps.config.factory
    req_name = entry_ad_name(entry, fac.glidein_name, fac.name)
    cfg = deps.config.entries.get(entry)
    if cfg is None or not cfg.enabled:
        status = "not_configured" if cfg is None else "disabled"
        return {"entry": entry, "status": status, "invalidated": _withdraw_entry(deps, req_name)}
    web = _web(deps, entry)
    if web is None:
        detail = "no staging area holds this entry (run `gwms staging build`)"
        log.warning("entry %s not advertised: %s", entry, detail)
        return {"entry": entry, "status": "no_staging", "detail": detail}
    clients = _client_monitoring(deps, entry, cfg, now)
    totals = monitor_totals(client.values for client in clients.values())
    start = int(now) if daemon_start_time is None else daemon_start_time
    entry_ad = _entry_ad(deps, entry, cfg, web, totals, start, now)
    sequence = _sequence(now)
    deps.dashboard.advertise(AdType.GLIDEFACTORY, [entry_ad.to_attrs(sequence=sequence)])
    client_ads = [
        FactoryClientAd.for_entry(entry_ad, name, {**totals, **client.values}, client.limits)
        for name, client in sorted(clients.items())
    ]
    if client_ads:
        deps.dashboard.advertise(
            AdType.GLIDEFACTORY_CLIENT, [ad.to_attrs(sequence=sequence) for ad in client_ads]
        )
    vanished = _withdraw_vanished_clients(deps, req_name, set(clients))
    return {
        "entry": entry,
        "status": "advertised",
        "in_downtime": entry_ad.in_downtime,
        "clients": sorted(clients),
        "limits_triggered": {
            name: sorted(flag.monitor_name for flag in client.limits)
            for name, client in sorted(clients.items())
            if client.limits
        },
        "invalidated_clients": vanished,
    }


def advertise_global(deps: FactoryDeps, *, daemon_start_time: int | None = None) -> dict[str, Any]:
    """Publish the ``glidefactoryglobal`` ad; withdraw the ads of entries no longer served.

    The ad carries the current key only: the ad type has one ``PubKey*`` set. During a key
    rotation the old key is still accepted for its grace period (see
    :class:`gwms_tasks.core.keyring.Keyring`), which is what lets frontends move over.

    Returns:
        A summary for the task result: the ad's Name, the key ids, the entries withdrawn.
    """
    now = deps.clock()
    fac = deps.config.factory
    keyring = deps.keyring()
    start = int(now) if daemon_start_time is None else daemon_start_time
    ad = FactoryGlobalAd(fac.name, fac.glidein_name, start, _public_key(keyring.current))
    deps.dashboard.advertise(AdType.GLIDEFACTORY_GLOBAL, [ad.to_attrs(sequence=_sequence(now))])
    gone = sorted(_advertised_entries(deps) - set(deps.config.enabled_entries()))
    invalidated = sum(
        _withdraw_entry(deps, entry_ad_name(entry, fac.glidein_name, fac.name)) for entry in gone
    )
    if gone:
        log.info("withdrew the ads of entries no longer served: %s", ", ".join(gone))
    old = [key.pub_key_id for key in keyring.keys_at(now)[1:]]
    return {
        "name": ad.name,
        "pub_key_id": keyring.current.pub_key_id,
        "old_pub_key_ids": old,
        "withdrawn_entries": gone,
        "invalidated": invalidated,
    }


# --- the entry ad -----------------------------------------------------------------------------


def _sequence(now: float) -> int:
    return int(now * 1000)


def _public_key(key: FactoryKey) -> FactoryPublicKey:
    return FactoryPublicKey(key.pub_key_id, key.public_pem.decode("ascii"), key.pub_key_type)


def _web(deps: FactoryDeps, entry: str) -> FactoryWeb | None:
    index = deps.staging()
    if index is None or entry not in index.entries:
        return None
    attrs = index.web_attributes(entry, deps.config.factory.web_url)
    return FactoryWeb(
        url=attrs["WebURL"],
        sign_type=attrs["WebSignType"],
        descript_file=attrs["WebDescriptFile"],
        descript_sign=attrs["WebDescriptSign"],
        entry_descript_file=attrs["WebEntryDescriptFile"],
        entry_descript_sign=attrs["WebEntryDescriptSign"],
    )


def _entry_ad(
    deps: FactoryDeps,
    entry: str,
    cfg: EntryConfig,
    web: FactoryWeb,
    totals: Mapping[str, int],
    start: int,
    now: float,
) -> FactoryEntryAd:
    fac = deps.config.factory
    period = entry_downtime(deps.downtimes(), now, entry)
    return FactoryEntryAd(
        entry_name=entry,
        glidein_name=fac.glidein_name,
        factory_name=fac.name,
        daemon_start_time=start,
        public_key=_public_key(deps.keyring().current),
        auth_method=str(cfg.auth_method),
        web=web,
        limits=AdvertisedLimits.of(deps.config.entry_limits(entry)),
        attributes=entry_attributes(cfg),
        params=dict(cfg.params()),
        submit_attrs=dict(cfg.submit_attrs),
        monitor=dict(totals),
        in_downtime=period is not None,
        downtime_comment=period.comment if period is not None else "",
    )


def entry_attributes(cfg: EntryConfig) -> dict[str, AdValue]:
    """The un-prefixed attributes of an entry's ads: configured ones, then those the entry's
    own settings force (reference §1.1), which win over a configured attribute of that name.

    ``GLIDEIN_Gatekeeper`` is the CE for grid backends; entries without one (local or
    simulated sites) show their backend kind there.
    """
    forced: dict[str, AdValue] = {
        "GLIDEIN_Gatekeeper": cfg.gatekeeper or str(cfg.backend.kind),
        "GLIDEIN_GridType": str(cfg.grid_type),
        "GLIDEIN_REQUIRE_VOMS": "False",
        "GLIDEIN_TrustDomain": cfg.trust_domain,
        "GLIDEIN_SlotsLayout": str(cfg.slots_layout),
        "GLIDEIN_WorkDir": cfg.startup_dir,
        "GLIDEIN_Verbosity": str(cfg.verbosity),
    }
    optional = {"GLIDEIN_GlobusRSL": cfg.rsl, "GLIDEIN_ProxyURL": cfg.proxy_url}
    forced.update({name: value for name, value in optional.items() if value is not None})
    return {**cfg.published_attributes(), **forced}


# --- per-client monitoring from the state store -----------------------------------------------


@dataclass
class ClientMonitoring:
    """What one client's glidefactoryclient ad reports.

    Attributes:
        values: ``GlideinMonitor*`` values without the prefix (Status*, Requested*).
        limits: the limits triggered for this client in the latest find-work pass.
    """

    values: dict[str, int]
    limits: list[LimitTriggered] = field(default_factory=list)


@dataclass
class _Demands:
    """A client's live decisions summed up."""

    requested_idle: int = 0
    adjusted_idle: int = 0
    requested_max: int = 0
    frontend_keys: set[str] = field(default_factory=set)


def _client_monitoring(
    deps: FactoryDeps, entry: str, cfg: EntryConfig, now: float
) -> dict[str, ClientMonitoring]:
    loop_delay = deps.config.factory.loop_delay
    live = [
        d
        for d in deps.state.entries.decisions(entry).values()
        if _is_client(d) and is_current(d, now, loop_delay)
    ]
    demands = _demands_by_client(entry, live)
    counts = _client_counts(deps, entry)
    entry_flags, class_flags = triggered_limits(live)
    cores = _cores_per_glidein(cfg)
    clients: dict[str, ClientMonitoring] = {}
    for client in sorted(set(demands) | {c for c, n in counts.items() if n != StatusCounts()}):
        demand = demands.get(client, _Demands())
        mine = counts.get(client, StatusCounts())
        requested = Requested(
            idle=demand.requested_idle,
            adjusted_idle=demand.adjusted_idle,
            max_glideins=demand.requested_max,
            idle_cores=demand.requested_idle * cores,
            max_cores=demand.requested_max * cores,
        )
        values = monitor_values(mine, requested, running_cores=mine.running * cores)
        flags = [*entry_flags]
        for key in sorted(demand.frontend_keys):
            flags.extend(class_flags.get(key, ()))
        clients[client] = ClientMonitoring(values, flags)
    return clients


def _is_client(decision: Mapping[str, Any]) -> bool:
    """Whether a decision is a client's: rejected requests are not clients."""
    return "rejected" not in decision and isinstance(decision.get("client"), str)


def _demands_by_client(entry: str, decisions: Sequence[JsonDict]) -> dict[str, _Demands]:
    demands: dict[str, _Demands] = {}
    for decision in decisions:
        summed = demands.setdefault(str(decision["client"]), _Demands())
        submit = decision.get("submit")
        if not isinstance(submit, dict):
            continue  # the entry failed closed: the request is there, its numbers are not
        try:
            summed.requested_idle += int(submit["requested_idle"])
            summed.adjusted_idle += int(submit["adjusted_idle"])
            summed.requested_max += int(submit["requested_max"])
            summed.frontend_keys.add(str(submit["frontend_key"]))
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("entry %s: skipping a malformed decision: %r", entry, exc)
    return demands


def _client_counts(deps: FactoryDeps, entry: str) -> dict[str, StatusCounts]:
    snapshot = deps.state.entries.get_snapshot(entry)
    if snapshot is None:
        return {}
    return {
        scope.removeprefix(CLIENT_SCOPE): StatusCounts(
            **{name: int(counts.get(name, 0)) for name in _COUNT_FIELDS}
        )
        for scope, counts in snapshot.counts.items()
        if scope.startswith(CLIENT_SCOPE)
    }


def _cores_per_glidein(cfg: EntryConfig) -> int:
    attribute = cfg.attributes.get("GLIDEIN_CPUS")
    value = attribute.value if attribute is not None else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 1


def triggered_limits(
    decisions: Sequence[Mapping[str, Any]],
) -> tuple[list[LimitTriggered], dict[str, list[LimitTriggered]]]:
    """The limits reached after the latest find-work pass among ``decisions``.

    Every decision of a pass shares its time (``at``); each carries the entry and
    frontend:security-class counts it saw, the limits, and what it submitted. Counts only grow
    within a pass, so the largest "seen + submitted" is the pass's final count.

    Returns:
        The entry-wide flags, and the per-class flags by ``frontend:security_class``.
    """
    decided = [d for d in decisions if isinstance(d.get("submit"), dict)]
    latest = max((d["at"] for d in decisions), default=None)
    entry_after: dict[str, int] = {}
    entry_limits: dict[str, int] = {}
    by_class: dict[str, tuple[dict[str, int], dict[str, int]]] = {}
    for decision in (d for d in decided if d["at"] == latest):
        submit = decision["submit"]
        try:
            added = int(submit["count"])
            _merge_max(entry_after, _after(submit["entry"], added))
            entry_limits = dict(submit["entry_limits"])
            seen, _ = by_class.setdefault(str(submit["frontend_key"]), ({}, {}))
            _merge_max(seen, _after(submit["frontend"], added))
            by_class[str(submit["frontend_key"])] = (seen, dict(submit["frontend_limits"]))
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("skipping a malformed decision for the limit flags: %r", exc)
    entry_flags = _flags(entry_after, entry_limits, _ENTRY_FLAGS, None)
    class_flags = {
        key: _flags(seen, limits, _CLASS_FLAGS, key) for key, (seen, limits) in by_class.items()
    }
    return entry_flags, {key: flags for key, flags in class_flags.items() if flags}


def _after(counts: Mapping[str, Any], added: int) -> dict[str, int]:
    idle, running = int(counts["idle"]) + added, int(counts["running"])
    return {"idle": idle, "held": int(counts["held"]), "glideins": idle + running}


def _merge_max(into: dict[str, int], values: Mapping[str, int]) -> None:
    for name, value in values.items():
        into[name] = max(into.get(name, value), value)


# (flag, counted value, limit name)
_ENTRY_FLAGS = (
    (FactoryLimit.IDLE_GLIDEINS_PER_ENTRY, "idle", "max_idle"),
    (FactoryLimit.HELD_GLIDEINS_PER_ENTRY, "held", "max_held"),
    (FactoryLimit.TOTAL_GLIDEINS_PER_ENTRY, "glideins", "max_glideins"),
)
_CLASS_FLAGS = (
    (FactoryLimit.IDLE_PER_CLASS, "idle", "max_idle"),
    (FactoryLimit.TOTAL_PER_CLASS, "glideins", "max_glideins"),
)


def _flags(
    counts: Mapping[str, int],
    limits: Mapping[str, Any],
    table: Sequence[tuple[FactoryLimit, str, str]],
    frontend_key: str | None,
) -> list[LimitTriggered]:
    flags = []
    for limit, counted, bound in table:
        if counted in counts and bound in limits and counts[counted] >= int(limits[bound]):
            flags.append(LimitTriggered(limit, counts[counted], int(limits[bound]), frontend_key))
    return flags


# --- withdrawing ads --------------------------------------------------------------------------


def _withdraw_entry(deps: FactoryDeps, req_name: str) -> int:
    """Invalidate this factory's glidefactory and glidefactoryclient ads of one entry."""
    literal = string_literal(req_name)
    count = deps.dashboard.invalidate(AdType.GLIDEFACTORY, f"Name =?= {literal}")
    return count + deps.dashboard.invalidate(
        AdType.GLIDEFACTORY_CLIENT, f"ReqGlidein =?= {literal}"
    )


def _withdraw_vanished_clients(deps: FactoryDeps, req_name: str, clients: set[str]) -> list[str]:
    """Invalidate the client ads of the entry whose client is no longer served."""
    found = deps.dashboard.query(
        AdType.GLIDEFACTORY_CLIENT, f"ReqGlidein =?= {string_literal(req_name)}"
    )
    vanished = set()
    for ad in found:
        client, name = ad.attrs.get("ReqClientName"), ad.attrs.get("Name")
        if isinstance(client, str) and isinstance(name, str) and client not in clients:
            constraint = f"Name =?= {string_literal(name)}"
            if deps.dashboard.invalidate(AdType.GLIDEFACTORY_CLIENT, constraint):
                vanished.add(client)
    return sorted(vanished)


def _advertised_entries(deps: FactoryDeps) -> set[str]:
    """Entries this factory instance has glidefactory or glidefactoryclient ads of."""
    fac = deps.config.factory
    factory, glidein = string_literal(fac.name), string_literal(fac.glidein_name)
    entries: set[str] = set()
    for ad_type, prefix in ((AdType.GLIDEFACTORY, ""), (AdType.GLIDEFACTORY_CLIENT, "Req")):
        constraint = f"{prefix}FactoryName =?= {factory} && {prefix}GlideinName =?= {glidein}"
        for ad in deps.dashboard.query(ad_type, constraint):
            name = ad.attrs.get(f"{prefix}EntryName")
            if isinstance(name, str):
                entries.add(name)
    return entries
