"""The state store in Redis: entry snapshots and decisions, submit ledger, failed submits, locks
and monitoring time series.

Layout (key names from :mod:`gwms_tasks.keys`):
    snapshot    hash   taken_at, counts (JSON), glideins, and error/failed_at after a failure
    decisions   hash   client -> JSON decision
    ledger      hash   one per submit key (see :func:`~.memory_state.ledger_fields`), with TTL
    failed      hash   failed_id -> JSON failed submit
    lock        string random token, ``SET NX PX`` (Redis' clock decides expiry)
    ts          zset   JSON ``{"t": bucket, "v": values}`` scored by bucket start

Every multi-key or multi-step write is one MULTI/EXEC transaction or one Lua script. The codec
is shared with the in-memory twin so both hold the same records.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, cast

import redis
from redis.typing import EncodableT, FieldT

from gwms_tasks.adapters.memory_completed import DEFAULT_RECENT_KEEP
from gwms_tasks.adapters.memory_state import (
    DEFAULT_LEDGER_TTL,
    Point,
    Resolution,
    check_claim,
    dump_json,
    failed_from_json,
    failed_to_json,
    inflight_to_json,
    inflights_from_json,
    ledger_fields,
    ledger_from_fields,
    load_json,
    lock_token,
    lock_ttl_ms,
    parse_resolution,
    sample_from_member,
    sample_member,
    snapshot_fields,
    snapshot_from_fields,
)
from gwms_tasks.errors import PermanentError, TransientError
from gwms_tasks.keys import Keys
from gwms_tasks.ports import (
    EntrySnapshot,
    FailedSubmit,
    InflightSubmit,
    JsonDict,
    LedgerRecord,
    LedgerState,
)

# Create the ledger record only if the key does not exist, with its expiry, in one step.
_CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""
# Update fields of an existing ledger record; never create a half record.
_UPDATE_EXISTING = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""
# Delete the lock only while it still holds the caller's token.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@contextmanager
def redis_errors(action: str) -> Iterator[None]:
    """Translate redis-py errors raised while doing ``action`` into the project's errors.

    Unreachable, timing out, loading or read-only (failover) servers are transient; refused
    credentials, ACL refusals and other command errors are permanent.
    """
    try:
        yield
    except redis.exceptions.NoPermissionError as exc:
        raise PermanentError(
            f"Redis refused to {action}: {exc} (the connected ACL user lacks this permission)"
        ) from exc
    except (redis.exceptions.AuthenticationError, redis.exceptions.AuthorizationError) as exc:
        raise PermanentError(f"Redis refused the credentials, cannot {action}: {exc}") from exc
    except (
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
        redis.exceptions.ReadOnlyError,
    ) as exc:
        raise TransientError(f"Redis unavailable while trying to {action}: {exc}") from exc
    except redis.exceptions.ResponseError as exc:
        raise PermanentError(f"Redis rejected the command to {action}: {exc}") from exc
    except redis.exceptions.RedisError as exc:
        raise TransientError(f"Redis failed while trying to {action}: {exc}") from exc


def text(value: bytes | str) -> str:
    """A reply as text, whether or not the client decodes responses."""
    return value.decode() if isinstance(value, bytes) else value


def text_hash(reply: Any) -> dict[str, str]:
    return {text(k): text(v) for k, v in cast(Mapping[bytes | str, bytes | str], reply).items()}


class RedisEntryState:
    """EntryState in Redis."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._r = client
        self._keys = keys

    def put_snapshot(self, snapshot: EntrySnapshot) -> None:
        key = self._keys.snapshot(snapshot.entry)
        fields = snapshot_fields(snapshot)
        with redis_errors(f"store the snapshot of entry {snapshot.entry!r}"):
            pipe = self._r.pipeline(transaction=True)
            pipe.delete(key)  # drop a previous error/failed_at
            pipe.hset(key, mapping=_encodable(fields))
            pipe.execute()

    def get_snapshot(self, entry: str) -> EntrySnapshot | None:
        with redis_errors(f"read the snapshot of entry {entry!r}"):
            fields = text_hash(self._r.hgetall(self._keys.snapshot(entry)))
        return snapshot_from_fields(entry, fields) if fields else None

    def record_query_failure(self, entry: str, error: str, now: float) -> None:
        key = self._keys.snapshot(entry)
        with redis_errors(f"record the failed query of entry {entry!r}"):
            self._r.hset(key, mapping={"error": error, "failed_at": repr(float(now))})

    def put_decision(self, entry: str, client: str, decision: JsonDict) -> None:
        value = dump_json(decision, f"decision of entry {entry!r} client {client!r}")
        with redis_errors(f"store the decision of entry {entry!r} client {client!r}"):
            self._r.hset(self._keys.decisions(entry), client, value)

    def get_decision(self, entry: str, client: str) -> JsonDict | None:
        with redis_errors(f"read the decision of entry {entry!r} client {client!r}"):
            reply = self._r.hget(self._keys.decisions(entry), client)
        if reply is None:
            return None
        return dict(load_json(text(reply), f"decision of entry {entry!r}"))

    def decisions(self, entry: str) -> dict[str, JsonDict]:
        with redis_errors(f"read the decisions of entry {entry!r}"):
            texts = text_hash(self._r.hgetall(self._keys.decisions(entry)))
        return {c: dict(load_json(t, f"decision of entry {entry!r}")) for c, t in texts.items()}


class RedisSubmitLedger:
    """SubmitLedger in Redis; each record expires ``ttl`` seconds after its claim."""

    def __init__(self, client: redis.Redis, keys: Keys, ttl: float = DEFAULT_LEDGER_TTL) -> None:
        self._r = client
        self._keys = keys
        self._ttl_ms = max(1, int(ttl * 1000))
        self._claim = client.register_script(_CLAIM)
        self._update_existing = client.register_script(_UPDATE_EXISTING)

    def claim(self, submit_key: str, entry: str, count: int, now: float) -> bool:
        check_claim(submit_key, count)
        record = LedgerRecord(submit_key, entry, count, LedgerState.CLAIMED, claimed_at=now)
        args = [self._ttl_ms, *_flatten(ledger_fields(record))]
        with redis_errors(f"claim submit key {submit_key!r}"):
            return bool(self._claim(keys=[self._keys.ledger(submit_key)], args=args))

    def get(self, submit_key: str) -> LedgerRecord | None:
        with redis_errors(f"read submit key {submit_key!r}"):
            fields = text_hash(self._r.hgetall(self._keys.ledger(submit_key)))
        return ledger_from_fields(fields) if fields else None

    def mark_submitted(self, submit_key: str, job_ids: Sequence[str]) -> None:
        ids = dump_json([str(j) for j in job_ids], "ledger job ids")
        self._update(submit_key, {"state": LedgerState.SUBMITTED, "job_ids": ids})

    def mark_failed(self, submit_key: str, detail: str) -> None:
        self._update(submit_key, {"state": LedgerState.FAILED, "detail": detail})

    def _update(self, submit_key: str, changes: Mapping[str, str]) -> None:
        with redis_errors(f"update submit key {submit_key!r}"):
            done = self._update_existing(
                keys=[self._keys.ledger(submit_key)], args=_flatten(changes)
            )
        if not done:
            raise PermanentError(f"submit key {submit_key!r} was never claimed")


class RedisFailedSubmits:
    """FailedSubmits in one Redis hash."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._r = client
        self._key = keys.failed_submits()

    def add(self, failed: FailedSubmit) -> None:
        value = failed_to_json(failed)
        with redis_errors(f"record failed submit {failed.failed_id!r}"):
            self._r.hset(self._key, failed.failed_id, value)

    def list(self) -> list[FailedSubmit]:
        with redis_errors("list failed submits"):
            texts = text_hash(self._r.hgetall(self._key))
        return sorted(
            map(failed_from_json, texts.values()), key=lambda f: (f.failed_at, f.failed_id)
        )

    def get(self, failed_id: str) -> FailedSubmit | None:
        with redis_errors(f"read failed submit {failed_id!r}"):
            reply = self._r.hget(self._key, failed_id)
        return None if reply is None else failed_from_json(text(reply))

    def remove(self, failed_id: str) -> bool:
        with redis_errors(f"remove failed submit {failed_id!r}"):
            return bool(self._r.hdel(self._key, failed_id))


class RedisLocks:
    """Locks as ``SET NX PX`` keys holding a random token; release is compare-and-delete."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._r = client
        self._keys = keys
        self._release = client.register_script(_RELEASE)

    def acquire(self, name: str, ttl: float, owner: str = "") -> str | None:
        ttl_ms = lock_ttl_ms(name, ttl)
        token = lock_token(owner)
        with redis_errors(f"acquire lock {name!r}"):
            acquired = self._r.set(self._keys.lock(name), token, nx=True, px=ttl_ms)
        return token if acquired else None

    def holder(self, name: str) -> str | None:
        with redis_errors(f"read lock {name!r}"):
            token = self._r.get(self._keys.lock(name))
        return None if token is None else text(token)

    def release(self, name: str, token: str) -> bool:
        with redis_errors(f"release lock {name!r}"):
            return bool(self._release(keys=[self._keys.lock(name)], args=[token]))


class RedisTimeSeries:
    """TimeSeries as one zset per (entry, resolution), one member per bucket."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._r = client
        self._keys = keys

    def add(self, entry: str, now: float, values: Mapping[str, float]) -> None:
        with redis_errors(f"add a time-series sample of entry {entry!r}"):
            pipe = self._r.pipeline(transaction=True)
            for resolution in Resolution:
                key = self._keys.time_series(entry, resolution)
                bucket = resolution.bucket_start(now)
                pipe.zremrangebyscore(key, bucket, bucket)  # the latest sample wins its bucket
                pipe.zadd(key, {sample_member(bucket, values): bucket})
                pipe.zremrangebyscore(key, "-inf", f"({resolution.oldest_kept(now)!r}")
            pipe.execute()

    def series(self, entry: str, resolution: str, since: float) -> list[Point]:
        key = self._keys.time_series(entry, parse_resolution(resolution))
        with redis_errors(f"read the {resolution} time series of entry {entry!r}"):
            members = cast(list[bytes | str], self._r.zrangebyscore(key, since, "+inf"))
        return [sample_from_member(text(m)) for m in members]


class RedisInflightSubmits:
    """InflightSubmits in one hash per entry: submit_key -> JSON record."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._r = client
        self._keys = keys

    def add(self, record: InflightSubmit) -> None:
        with redis_errors("record an in-flight submit"):
            self._r.hset(
                self._keys.inflight(record.entry), record.submit_key, inflight_to_json(record)
            )

    def list(self, entry: str) -> list[InflightSubmit]:
        with redis_errors("read in-flight submits"):
            found = text_hash(self._r.hgetall(self._keys.inflight(entry)))
        return inflights_from_json(found)

    def done(self, entry: str, submit_key: str) -> None:
        with redis_errors("clear an in-flight submit"):
            self._r.hdel(self._keys.inflight(entry), submit_key)


class RedisState:
    """Every state port in one Redis; one attribute per port (their method names overlap).

    Args:
        client: a redis-py client of the persistent state Redis.
        keys: the key names.
        ledger_ttl: seconds a submit ledger record is kept after its claim.
        recent_keep: completed-glidein outcomes kept per entry for ``completed.recent``.

    Attributes:
        entries: EntryState.
        ledger: SubmitLedger.
        failed: FailedSubmits.
        locks: Locks.
        series: TimeSeries.
        inflight: InflightSubmits.
        completed: CompletedGlideins.
        counters: Counters.
    """

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        ledger_ttl: float = DEFAULT_LEDGER_TTL,
        recent_keep: int = DEFAULT_RECENT_KEEP,
    ) -> None:
        # Imported here: redis_completed builds on this module's error translation.
        from gwms_tasks.adapters.redis_completed import (  # noqa: PLC0415
            RedisCompletedGlideins,
            RedisCounters,
        )

        self.entries = RedisEntryState(client, keys)
        self.ledger = RedisSubmitLedger(client, keys, ledger_ttl)
        self.failed = RedisFailedSubmits(client, keys)
        self.locks = RedisLocks(client, keys)
        self.series = RedisTimeSeries(client, keys)
        self.inflight = RedisInflightSubmits(client, keys)
        self.completed = RedisCompletedGlideins(client, keys, recent_keep)
        self.counters = RedisCounters(client, keys)


def _flatten(fields: Mapping[str, str]) -> list[EncodableT]:
    return [part for pair in fields.items() for part in pair]


def _encodable(fields: Mapping[str, str]) -> dict[FieldT, EncodableT]:
    encodable: dict[FieldT, EncodableT] = {}
    encodable.update(fields)
    return encodable
