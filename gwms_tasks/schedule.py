"""The factory's periodic tasks: the schedule a config asks for, and keeping RedBeat in step.

Cadences (``L`` = ``factory.loop_delay``, ``A`` = ``factory.advertise_delay``):

=========================  ========  ==========================================================
name                       every     why
=========================  ========  ==========================================================
``find_work:<entry>``      L         safety net: a changed request triggers find-work at once
``monitor:<entry>``        L         fresh glidein counts; find-work fails closed without them
``advertise:<entry>``      L x A     glideinWMS's advertise_delay (ads live ``ad_lifetime``)
``advertise_global``       L x A     the factory-wide ad, with the same period
``credentials``            L         credentials must reach user workers before a submit
``aggregate``              L         monitoring time series at the factory's own resolution
=========================  ========  ==========================================================

Every item goes to the factory queue and ``expires`` after 90% of its period: a backlog (a
stopped worker, a slow broker) drops stale cycles instead of stacking them.

:func:`desired_schedule` is pure. :func:`sync_redbeat` makes RedBeat's entries match it, touching
only names this module owns. :func:`reload` validates a new config file first, so a bad file
changes nothing, then syncs and stores the accepted text where workers find it
(:func:`current_config`, :func:`refresh_config`). The stored text carries the operator token
as its digest only (:func:`token_digest`): no worker needs the token, and the web servers,
which check it against the digest, still see a new or removed token.
"""

from __future__ import annotations

import enum
import hashlib
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

import redis
import yaml
from celery import Celery
from celery.schedules import schedule as every
from redbeat.schedulers import RedBeatSchedulerEntry, ensure_conf, get_redis

from gwms_tasks.celery_app import make_celery
from gwms_tasks.config_file import read_config_text
from gwms_tasks.core.config import FactoryConfig, load_config
from gwms_tasks.errors import ConfigError, TransientError
from gwms_tasks.keys import Keys
from gwms_tasks.queues import FACTORY_QUEUE, TaskName

EXPIRES_FRACTION: Final = 0.9
"""A periodic task not started within this fraction of its period is dropped."""
TOKEN_DIGEST: Final = re.compile(r"sha256:[0-9a-f]{64}")
"""A ``web.operator_token`` given as its digest (how the accepted config stores it)."""


class ScheduleKind(enum.StrEnum):
    """What a schedule item runs; the first part of its name."""

    FIND_WORK = "find_work"
    MONITOR = "monitor"
    ADVERTISE = "advertise"
    ADVERTISE_GLOBAL = "advertise_global"
    CREDENTIALS = "credentials"
    AGGREGATE = "aggregate"

    @property
    def task(self) -> TaskName:
        return _TASKS[self]

    @property
    def per_entry(self) -> bool:
        return self in PER_ENTRY


_TASKS: Final = {
    ScheduleKind.FIND_WORK: TaskName.FIND_WORK,
    ScheduleKind.MONITOR: TaskName.MONITOR,
    ScheduleKind.ADVERTISE: TaskName.ADVERTISE,
    ScheduleKind.ADVERTISE_GLOBAL: TaskName.ADVERTISE_GLOBAL,
    ScheduleKind.CREDENTIALS: TaskName.CREDENTIALS,
    ScheduleKind.AGGREGATE: TaskName.AGGREGATE,
}
_KINDS: Final = {kind.value: kind for kind in ScheduleKind}
PER_ENTRY: Final = frozenset({ScheduleKind.FIND_WORK, ScheduleKind.MONITOR, ScheduleKind.ADVERTISE})


@dataclass(frozen=True, slots=True)
class ScheduleItem:
    """One periodic task: what, how often, for which entry (None: factory-wide)."""

    kind: ScheduleKind
    interval: float
    entry: str | None = None

    @property
    def name(self) -> str:
        return str(self.kind) if self.entry is None else f"{self.kind}:{self.entry}"

    @property
    def task(self) -> TaskName:
        return self.kind.task

    @property
    def expires(self) -> float:
        return self.interval * EXPIRES_FRACTION

    def kwargs(self) -> dict[str, str]:
        return {} if self.entry is None else {"entry": self.entry}

    def options(self) -> dict[str, Any]:
        """Sending options: the factory queue, and expiry relative to the send time."""
        return {"queue": FACTORY_QUEUE, "expires": self.expires}


def cadences(config: FactoryConfig) -> dict[ScheduleKind, float]:
    """The period of each kind of task, in seconds (see the module docstring)."""
    loop = config.factory.loop_delay
    advertise = loop * config.factory.advertise_delay
    periods = {ScheduleKind.ADVERTISE: advertise, ScheduleKind.ADVERTISE_GLOBAL: advertise}
    return {kind: periods.get(kind, loop) for kind in ScheduleKind}


def desired_schedule(config: FactoryConfig) -> dict[str, ScheduleItem]:
    """Every periodic task ``config`` asks for, by schedule name."""
    periods = cadences(config)
    items = [ScheduleItem(k, periods[k]) for k in ScheduleKind if not k.per_entry]
    items += [
        ScheduleItem(kind, periods[kind], entry)
        for entry in sorted(config.enabled_entries())
        for kind in ScheduleKind
        if kind.per_entry
    ]
    return {item.name: item for item in items}


def is_factory_schedule_name(name: str) -> bool:
    """True for a name :func:`desired_schedule` may produce; RedBeat keeps others untouched."""
    prefix, sep, entry = name.partition(":")
    kind = _KINDS.get(prefix)
    if kind is None:
        return False
    if not kind.per_entry:
        return not sep
    return bool(sep and entry) and ":" not in entry


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What :func:`sync_redbeat` changed, by schedule name."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()

    @property
    def touched(self) -> bool:
        return bool(self.added or self.removed or self.changed)


def sync_redbeat(app: Celery, desired: Mapping[str, ScheduleItem]) -> SyncReport:
    """Make the factory's RedBeat entries exactly ``desired``; leave every other entry alone.

    An entry whose definition changed keeps its last run time (no burst of runs); a new one
    is due at once. Each write is idempotent, so a sync cut short is completed by the next.

    Raises:
        TransientError: Redis could not be reached or refused a command.
    """
    try:
        return _sync(app, desired)
    except redis.RedisError as exc:
        raise TransientError(f"cannot update the beat schedule in Redis: {exc}") from exc


def _sync(app: Celery, desired: Mapping[str, ScheduleItem]) -> SyncReport:
    current = _factory_entries(app)
    removed = sorted(current.keys() - desired.keys())
    _delete(app, removed)
    added, changed = [], []
    for name, item in sorted(desired.items()):
        if name not in current:
            _save(app, item, last_run_at=None)
            added.append(name)
        elif not _matches(current[name], item):
            existing = current[name]
            _save(app, item, last_run_at=None if existing is None else existing.last_run_at)
            changed.append(name)
    return SyncReport(tuple(added), tuple(removed), tuple(changed))


def _factory_entries(app: Celery) -> dict[str, RedBeatSchedulerEntry | None]:
    """Our entries in RedBeat's schedule; None for one whose stored definition is unreadable."""
    conf = ensure_conf(app)
    found: dict[str, RedBeatSchedulerEntry | None] = {}
    for key in get_redis(app).zrange(conf.schedule_key, 0, -1):
        name = key.removeprefix(conf.key_prefix)
        if name == key or not is_factory_schedule_name(name):
            continue
        try:
            found[name] = RedBeatSchedulerEntry.from_key(key, app=app)
        except (KeyError, ValueError, TypeError):
            found[name] = None
    return found


def _matches(entry: RedBeatSchedulerEntry | None, item: ScheduleItem) -> bool:
    if entry is None:
        return False
    run_every = getattr(entry.schedule, "run_every", None)
    return (
        entry.task == item.task
        and isinstance(run_every, timedelta)
        and run_every.total_seconds() == item.interval
        and not entry.args
        and entry.kwargs == item.kwargs()
        and entry.options == item.options()
        and entry.enabled
    )


def _save(app: Celery, item: ScheduleItem, last_run_at: Any) -> None:
    entry = RedBeatSchedulerEntry(
        name=item.name,
        task=str(item.task),
        schedule=every(run_every=timedelta(seconds=item.interval)),
        kwargs=item.kwargs(),
        options=item.options(),
        app=app,
    )
    # None: due at once. RedBeat writes the run history only if absent, so a changed entry
    # keeps its own; last_run_at here only files it in the schedule index accordingly.
    entry.last_run_at = last_run_at
    entry.save()


def _delete(app: Celery, names: list[str]) -> None:
    conf = ensure_conf(app)
    with get_redis(app).pipeline() as pipe:
        for name in names:
            key = RedBeatSchedulerEntry.generate_key(app, name)
            pipe.zrem(conf.schedule_key, key)
            pipe.delete(key)
        pipe.execute()


@dataclass(frozen=True, slots=True)
class AcceptedConfig:
    """The config last accepted by a reload, as stored in Redis for every worker to read.

    Attributes:
        config: the validated config.
        text: its YAML text, with ``web.operator_token`` as its digest (no secret is stored).
        sha256: hex digest of ``text``; a worker compares it to notice a change.
        source: the file it was read from.
        accepted_at: epoch seconds of the reload.
    """

    config: FactoryConfig
    text: str
    sha256: str
    source: str
    accepted_at: float


@dataclass(frozen=True, slots=True)
class ReloadReport:
    """The outcome of a successful :func:`reload`."""

    config: FactoryConfig
    source: str
    sha256: str
    config_changed: bool
    sync: SyncReport


def reload(config_path: Path, *, keys: Keys | None = None) -> ReloadReport:
    """Validate the config at ``config_path``; if good, sync RedBeat and store it for workers.

    Raises:
        ConfigError: the file is unreadable or invalid; nothing was changed.
        TransientError: Redis could not be reached (a partial sync is completed by a retry).
    """
    text = read_config_text(config_path)
    config = load_config(text, str(config_path))
    return accept_config(config, text, str(config_path), keys=keys or Keys())


def accept_config(config: FactoryConfig, text: str, source: str, *, keys: Keys) -> ReloadReport:
    """Sync RedBeat to the validated ``config`` and store ``text`` as the accepted config."""
    app = make_celery(config, include=(), keys=keys)
    app.conf.redbeat_redis_options = {}  # fail fast: only the beat process retries Redis
    try:
        sync = sync_redbeat(app, desired_schedule(config))
        public = _without_secrets(text, config)
        digest = hashlib.sha256(public.encode()).hexdigest()
        changed = _store(get_redis(app), keys, public, digest, source)
    except redis.RedisError as exc:
        raise TransientError(f"cannot store the accepted config in Redis: {exc}") from exc
    finally:
        get_redis(app).close()
        app.close()
    return ReloadReport(config, source, digest, changed, sync)


def token_digest(token: str) -> str:
    """``sha256:<hex>`` of an operator token: what is stored, and what a sent token must match."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def _without_secrets(text: str, config: FactoryConfig) -> str:
    """``text`` with ``web.operator_token`` (validated in ``config``) replaced by its digest.

    The token is the one secret of the file; workers have no use for it, and the web servers
    need only its digest to check it. A token already given as a digest is kept as it is.
    """
    token = config.web.operator_token
    data = yaml.safe_load(text)
    web = data.get("web") if isinstance(data, dict) else None
    if token is None or not isinstance(web, dict):
        return text
    value = token.get_secret_value()
    web["operator_token"] = value if TOKEN_DIGEST.fullmatch(value) else token_digest(value)
    return str(yaml.safe_dump(data, sort_keys=False))


def _store(client: Any, keys: Keys, text: str, digest: str, source: str) -> bool:
    key = keys.accepted_config()
    previous = client.hget(key, "sha256")
    fields = {"text": text, "sha256": digest, "source": source, "accepted_at": time.time()}
    client.hset(key, mapping=fields)
    return previous is None or _as_str(previous) != digest


def current_config_hash(client: redis.Redis, keys: Keys) -> str | None:
    """The sha256 of the accepted config, or None before the first reload (one HGET).

    Raises:
        TransientError: Redis could not be reached.
    """
    try:
        value = client.hget(keys.accepted_config(), "sha256")
    except redis.RedisError as exc:
        raise TransientError(f"cannot read the accepted config hash: {exc}") from exc
    return None if value is None else _as_str(value)


def current_config(client: redis.Redis, keys: Keys) -> AcceptedConfig | None:
    """The accepted config, validated again, or None before the first reload.

    Raises:
        ConfigError: the stored text does not match its hash or no longer validates.
        TransientError: Redis could not be reached.
    """
    key = keys.accepted_config()
    try:
        raw = client.hgetall(key)
    except redis.RedisError as exc:
        raise TransientError(f"cannot read the accepted config: {exc}") from exc
    if not raw:
        return None
    fields = {_as_str(k): _as_str(v) for k, v in raw.items()}
    text, digest = fields.get("text", ""), fields.get("sha256", "")
    if hashlib.sha256(text.encode()).hexdigest() != digest:
        raise ConfigError(f"redis:{key}", ["the stored text does not match its sha256"])
    source = fields.get("source", "")
    config = load_config(text, f"{source} (accepted copy in redis:{key})")
    return AcceptedConfig(config, text, digest, source, float(fields.get("accepted_at", "0")))


def refresh_config(
    client: redis.Redis, keys: Keys, known_sha256: str | None
) -> AcceptedConfig | None:
    """The accepted config if it differs from ``known_sha256``, else None (a cheap poll)."""
    if current_config_hash(client, keys) in (None, known_sha256):
        return None
    return current_config(client, keys)


def _as_str(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
