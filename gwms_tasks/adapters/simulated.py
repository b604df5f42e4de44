"""Simulated grid backend: glideins queue and run at a modelled CE (``core/simulation.py``).

For scale tests and capacity planning. The model lives in memory by default; with a
``RedisSiteStore`` it is kept in one Redis hash per entry (``Keys.simulated(entry)``) so that
several worker processes (the user workers that submit, the factory worker whose monitor cycle
calls ``advance``) see the same simulated site.

Redis layout of the hash: ``v`` a version counter; ``meta`` JSON ``[next_num, next_cluster,
counters]``; ``c:<cluster>`` JSON of the cluster's first job number, count and tags;
``j:<num>`` JSON ``[phase, entered_ms, due_ms, holds, cluster]`` of each live glidein. Every
change is one optimistic transaction (WATCH the hash, check the version, write only the
changed fields and the next version in MULTI/EXEC, retry on conflict); each process keeps the
model in memory and reloads it only when another process has bumped the version.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

import redis

from gwms_tasks.adapters.redis_state import redis_errors
from gwms_tasks.core.model import Glidein
from gwms_tasks.core.simulation import (
    ClusterInfo,
    JobRecord,
    SiteModel,
    SiteParameters,
    SiteState,
)
from gwms_tasks.core.submit_description import check_submission
from gwms_tasks.errors import PermanentError, TransientError
from gwms_tasks.keys import Keys
from gwms_tasks.ports import Submission

T = TypeVar("T")


class SiteStore(Protocol):
    """Where the model of a simulated site lives."""

    def read(self) -> SiteModel:
        """The current model, to read from (do not change it)."""
        ...

    def update(self, change: Callable[[SiteModel], T]) -> T:
        """Apply ``change`` to the model atomically and return its result."""
        ...


class MemorySiteStore:
    """The model of one process, in memory."""

    def __init__(self, model: SiteModel) -> None:
        self._model = model

    def read(self) -> SiteModel:
        return self._model

    def update(self, change: Callable[[SiteModel], T]) -> T:
        return change(self._model)


class RedisSiteStore:
    """The model in a Redis hash, shared by every process that uses the same key.

    Args:
        client: the state Redis.
        key: the hash, ``Keys.simulated(entry)``.
        params / entry / rng: to rebuild the model from what Redis holds.
        max_attempts: optimistic transaction attempts before giving up with TransientError.
    """

    def __init__(
        self,
        client: redis.Redis,
        key: str,
        params: SiteParameters,
        entry: str,
        rng: random.Random,
        max_attempts: int = 50,
    ) -> None:
        self._client, self._key = client, key
        self._params, self._entry, self._rng = params, entry, rng
        self._max_attempts = max_attempts
        self._model: SiteModel | None = None
        self._version = -1

    def read(self) -> SiteModel:
        with redis_errors(f"read the simulated site {self._entry}"):
            return self._current(self._client)

    def update(self, change: Callable[[SiteModel], T]) -> T:
        try:
            with redis_errors(f"update the simulated site {self._entry}"):
                for _ in range(self._max_attempts):
                    try:
                        return self._try_update(change)
                    except redis.WatchError:
                        self._model = None  # changed in memory but not written: reload
        except BaseException:
            self._model = None
            raise
        raise TransientError(f"simulated site {self._entry}: too many concurrent updates")

    def _try_update(self, change: Callable[[SiteModel], T]) -> T:
        with self._client.pipeline() as pipe:
            pipe.watch(self._key)  # type: ignore[no-untyped-call]  # untyped in redis-py
            model = self._current(pipe)
            result = change(model)
            changes = model.take_changes()
            if not changes.jobs and not changes.clusters:
                return result  # nothing to write: other workers keep their copy
            pipe.multi()
            _write(pipe, self._key, changes, self._version + 1)
            pipe.execute()
            self._version += 1
            return result

    def _current(self, client: Any) -> SiteModel:
        """Our copy of the model, reloaded when another worker changed the site since."""
        version = _version(client.hget(self._key, "v"))
        if self._model is None or version != self._version:
            state, self._version = _decode(client.hgetall(self._key))
            self._model = SiteModel(
                self._params, self._entry, self._rng, track_changes=True, state=state
            )
        return self._model


def _version(raw: Any) -> int:
    try:
        return int(raw) if raw is not None else 0
    except ValueError as exc:
        raise PermanentError(f"corrupt simulated site state: version {raw!r}") from exc


def _write(pipe: Any, key: str, changes: SiteState, version: int) -> None:
    """Queue the changed fields, the deleted ones and the new version on a MULTI pipeline."""
    mapping: dict[str, str] = {
        "v": str(version),
        "meta": json.dumps([changes.next_num, changes.next_cluster, changes.counters]),
    }
    deleted: list[str] = []
    for num, record in changes.jobs.items():
        if record is None:
            deleted.append(f"j:{num}")
        else:
            mapping[f"j:{num}"] = json.dumps(list(record))
    for cluster, info in changes.clusters.items():
        if info is None:
            deleted.append(f"c:{cluster}")
        else:
            mapping[f"c:{cluster}"] = json.dumps(_cluster_fields(info))
    if deleted:
        pipe.hdel(key, *deleted)
    pipe.hset(key, mapping=mapping)


def _cluster_fields(info: ClusterInfo) -> list[Any]:
    return list(dataclasses.astuple(info))


def _job_record(raw: Any) -> JobRecord:
    if not (isinstance(raw, list) and len(raw) == 5 and all(type(v) is int for v in raw)):
        raise ValueError(f"bad job record {raw!r}")
    return raw[0], raw[1], raw[2], raw[3], raw[4]


def _decode(fields: dict[Any, Any]) -> tuple[SiteState, int]:
    """Rebuild the state from the hash (bytes or str keys and values)."""
    jobs: dict[int, JobRecord] = {}
    clusters: dict[int, ClusterInfo] = {}
    meta: list[Any] = [0, 1, {}]
    version = 0
    try:
        for raw_name, raw_value in fields.items():
            name = raw_name.decode() if isinstance(raw_name, bytes) else str(raw_name)
            value = raw_value.decode() if isinstance(raw_value, bytes) else str(raw_value)
            kind, _, ident = name.partition(":")
            if kind == "j":
                jobs[int(ident)] = _job_record(json.loads(value))
            elif kind == "c":
                clusters[int(ident)] = ClusterInfo(*json.loads(value))
            elif name == "meta":
                meta = json.loads(value)
            elif name == "v":
                version = int(value)
        next_num, next_cluster, counters = meta
    except (ValueError, TypeError) as exc:
        raise PermanentError(f"corrupt simulated site state: {exc}") from exc
    return SiteState(jobs, clusters, int(next_num), int(next_cluster), counters), version


class SimulatedBackend:
    """GridBackend of one entry over a simulated site.

    Args:
        store: where the site model lives (see ``in_memory`` and ``on_redis``).
        factory / glidein / entry: the identity whose glideins this backend holds.
        clock: epoch seconds, for submit, release, hold and remove.
    """

    def __init__(
        self,
        store: SiteStore,
        factory: str,
        glidein: str,
        entry: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._factory, self._glidein, self._entry = factory, glidein, entry
        self._clock = clock

    @classmethod
    def in_memory(
        cls,
        params: SiteParameters,
        factory: str,
        glidein: str,
        entry: str,
        rng: random.Random,
        clock: Callable[[], float] = time.time,
    ) -> SimulatedBackend:
        """A simulated site private to this process."""
        return cls(MemorySiteStore(SiteModel(params, entry, rng)), factory, glidein, entry, clock)

    @classmethod
    def on_redis(
        cls,
        client: redis.Redis,
        keys: Keys,
        params: SiteParameters,
        factory: str,
        glidein: str,
        entry: str,
        rng: random.Random,
        clock: Callable[[], float] = time.time,
    ) -> SimulatedBackend:
        """A simulated site shared through Redis (the hash ``keys.simulated(entry)``)."""
        store = RedisSiteStore(client, keys.simulated(entry), params, entry, rng)
        return cls(store, factory, glidein, entry, clock)

    def submit(self, submission: Submission) -> list[str]:
        """Queue the glideins at the simulated site (WAIT first)."""
        check_submission(submission, self._factory, self._glidein, self._entry)
        if submission.count == 0:
            return []
        now = self._clock()
        return self._store.update(lambda m: m.submit(submission.tags, submission.count, now))

    def query(self) -> list[Glidein]:
        return self._store.read().glideins()

    def release(self, job_ids: Sequence[str]) -> None:
        if job_ids:
            now = self._clock()
            self._store.update(lambda m: m.release(job_ids, now))

    def remove(self, job_ids: Sequence[str], forcex: bool = False) -> None:
        """Remove glideins (``forcex`` makes no difference: the site forgets them at once)."""
        if job_ids:
            now = self._clock()
            self._store.update(lambda m: m.remove(job_ids, now))

    def hold(self, job_ids: Sequence[str]) -> None:
        """Hold glideins as the site would (an operator's or a test's lever)."""
        if job_ids:
            now = self._clock()
            self._store.update(lambda m: m.hold(job_ids, now))

    def advance(self, now: float) -> int:
        """Move the site forward to ``now`` (the monitor cycle calls this); return events."""
        return self._store.update(lambda m: m.advance(now))

    def counters(self) -> dict[str, int]:
        """Glideins submitted, held, started, completed, failed and removed so far."""
        return self._store.read().counters
