"""In-memory twin of the Redis state store, and the JSON codec both share.

The twin keeps the same encoded records the Redis adapter keeps (hashes of strings, JSON
members), so both accept and refuse the same values and both hand back fresh copies: a caller
mutating what it stored or read never changes the store. Everything is guarded by one lock per
port, so the twin is safe to share between threads (the ledger claim is tested with 20).

Time: ``now`` arguments drive snapshots and time series; lock and ledger expiry follow the
injected ``clock`` (monotonic seconds by default), as Redis' own clock drives them in Redis.
"""

from __future__ import annotations

import bisect
import enum
import json
import math
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

from gwms_tasks.adapters.memory_completed import (
    DEFAULT_RECENT_KEEP,
    MemoryCompletedGlideins,
    MemoryCounters,
)
from gwms_tasks.errors import PermanentError
from gwms_tasks.ports import (
    EntrySnapshot,
    FailedSubmit,
    InflightSubmit,
    JsonDict,
    LedgerRecord,
    LedgerState,
)

DEFAULT_LEDGER_TTL = 7 * 24 * 3600.0  # far beyond any redelivery (visibility timeout) window

Clock = Callable[[], float]
Fields = dict[str, str]
Point = tuple[float, dict[str, float]]


class Resolution(enum.StrEnum):
    """Time-series resolutions: bucket width and how long buckets are kept."""

    MINUTE = "minute"
    HOUR = "hour"

    @property
    def bucket_seconds(self) -> float:
        return 60.0 if self is Resolution.MINUTE else 3600.0

    @property
    def span_seconds(self) -> float:
        return 24 * 3600.0 if self is Resolution.MINUTE else 31 * 24 * 3600.0

    def bucket_start(self, now: float) -> float:
        return math.floor(now / self.bucket_seconds) * self.bucket_seconds

    def oldest_kept(self, now: float) -> float:
        """Start of the oldest bucket still inside the span that ends with ``now``'s bucket."""
        return self.bucket_start(now) - self.span_seconds + self.bucket_seconds


def parse_resolution(value: str) -> Resolution:
    try:
        return Resolution(value)
    except ValueError:
        valid = ", ".join(r.value for r in Resolution)
        raise PermanentError(f"unknown time-series resolution {value!r} (use {valid})") from None


# ----------------------------------------------------------------------------------------------
# JSON codec shared with the Redis adapter


def dump_json(value: Any, what: str) -> str:
    """Canonical JSON text of ``value``; PermanentError if it is not plain finite JSON."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise PermanentError(f"{what} cannot be stored as JSON: {exc}") from exc


def load_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise PermanentError(f"{what} holds corrupt JSON: {exc}") from exc


def snapshot_fields(snapshot: EntrySnapshot) -> Fields:
    """Hash fields of a snapshot (``error`` only when set)."""
    counts = {scope: dict(by_status) for scope, by_status in snapshot.counts.items()}
    fields = {
        "taken_at": repr(float(snapshot.taken_at)),
        "counts": dump_json(counts, f"snapshot counts of entry {snapshot.entry!r}"),
        "glideins": str(int(snapshot.glideins)),
    }
    if snapshot.error is not None:
        fields["error"] = snapshot.error
    return fields


def snapshot_from_fields(entry: str, fields: Mapping[str, str]) -> EntrySnapshot:
    """A snapshot from its hash; a hash holding only a failure has no counts and time 0."""
    what = f"snapshot of entry {entry!r}"
    try:
        counts = load_json(fields.get("counts", "{}"), what)
        return EntrySnapshot(
            entry=entry,
            taken_at=float(fields.get("taken_at", "0")),
            counts={str(s): {str(k): int(v) for k, v in c.items()} for s, c in counts.items()},
            glideins=int(fields.get("glideins", "0")),
            error=fields.get("error"),
        )
    except (AttributeError, TypeError, ValueError) as exc:
        raise PermanentError(f"{what} is malformed: {exc}") from exc


def ledger_fields(record: LedgerRecord) -> Fields:
    return {
        "submit_key": record.submit_key,
        "entry": record.entry,
        "count": str(record.count),
        "state": record.state,
        "job_ids": dump_json(list(record.job_ids), "ledger job ids"),
        "claimed_at": repr(float(record.claimed_at)),
        "detail": record.detail,
    }


def ledger_from_fields(fields: Mapping[str, str]) -> LedgerRecord:
    what = f"ledger record {fields.get('submit_key')!r}"
    try:
        return LedgerRecord(
            submit_key=fields["submit_key"],
            entry=fields["entry"],
            count=int(fields["count"]),
            state=LedgerState(fields["state"]),
            job_ids=tuple(str(j) for j in load_json(fields["job_ids"], what)),
            claimed_at=float(fields["claimed_at"]),
            detail=fields.get("detail", ""),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PermanentError(f"{what} is malformed: {exc!r}") from exc


def failed_to_json(failed: FailedSubmit) -> str:
    return dump_json(asdict(failed), f"failed submit {failed.failed_id!r}")


def failed_from_json(text: str) -> FailedSubmit:
    data = load_json(text, "a failed submit record")
    try:
        return FailedSubmit(**data)
    except TypeError as exc:
        raise PermanentError(f"failed submit record is malformed: {exc}") from exc


def sample_member(bucket: float, values: Mapping[str, float]) -> str:
    """The zset member of one bucket: its start and values (one member per bucket)."""
    try:
        floats = {str(name): float(value) for name, value in values.items()}
    except (TypeError, ValueError) as exc:
        raise PermanentError(f"time-series values must be numbers: {exc}") from exc
    return dump_json({"t": bucket, "v": floats}, "time-series sample")


def sample_from_member(text: str) -> Point:
    data = load_json(text, "a time-series sample")
    try:
        return float(data["t"]), {str(k): float(v) for k, v in data["v"].items()}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PermanentError(f"time-series sample is malformed: {exc!r}") from exc


def check_claim(submit_key: str, count: int) -> None:
    if not submit_key:
        raise PermanentError("a submit key must not be empty")
    if count < 1:
        raise PermanentError(f"submit {submit_key!r}: count must be >= 1, got {count}")


def lock_ttl_ms(name: str, ttl: float) -> int:
    if not ttl > 0:
        raise PermanentError(f"lock {name!r}: ttl must be > 0 seconds, got {ttl}")
    return max(1, int(ttl * 1000))


def lock_token(owner: str) -> str:
    """A fresh lock token; ``<owner>/<random>`` when the holder names itself (see Locks)."""
    if "/" in owner:
        raise PermanentError(f"a lock owner may not contain '/': {owner!r}")
    random_part = secrets.token_hex(16)
    return f"{owner}/{random_part}" if owner else random_part


# ----------------------------------------------------------------------------------------------
# The twin


class MemoryEntryState:
    """EntryState in memory."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._snapshots: dict[str, Fields] = {}
        self._decisions: dict[str, dict[str, str]] = {}

    def put_snapshot(self, snapshot: EntrySnapshot) -> None:
        fields = snapshot_fields(snapshot)
        with self._mutex:
            self._snapshots[snapshot.entry] = fields

    def get_snapshot(self, entry: str) -> EntrySnapshot | None:
        with self._mutex:
            fields = dict(self._snapshots.get(entry, {}))
        return snapshot_from_fields(entry, fields) if fields else None

    def record_query_failure(self, entry: str, error: str, now: float) -> None:
        with self._mutex:
            fields = self._snapshots.setdefault(entry, {})
            fields.update(error=error, failed_at=repr(float(now)))

    def put_decision(self, entry: str, client: str, decision: JsonDict) -> None:
        text = dump_json(decision, f"decision of entry {entry!r} client {client!r}")
        with self._mutex:
            self._decisions.setdefault(entry, {})[client] = text

    def get_decision(self, entry: str, client: str) -> JsonDict | None:
        with self._mutex:
            text = self._decisions.get(entry, {}).get(client)
        return None if text is None else dict(load_json(text, f"decision of entry {entry!r}"))

    def decisions(self, entry: str) -> dict[str, JsonDict]:
        with self._mutex:
            texts = dict(self._decisions.get(entry, {}))
        return {c: dict(load_json(t, f"decision of entry {entry!r}")) for c, t in texts.items()}


class MemorySubmitLedger:
    """SubmitLedger in memory; records expire ``ttl`` seconds of ``clock`` after the claim."""

    def __init__(self, clock: Clock, ttl: float = DEFAULT_LEDGER_TTL) -> None:
        self._clock = clock
        self._ttl = ttl
        self._mutex = threading.Lock()
        self._records: dict[str, tuple[float, Fields]] = {}

    def claim(self, submit_key: str, entry: str, count: int, now: float) -> bool:
        check_claim(submit_key, count)
        record = LedgerRecord(submit_key, entry, count, LedgerState.CLAIMED, claimed_at=now)
        with self._mutex:
            if self._live(submit_key) is not None:
                return False
            self._records[submit_key] = (self._clock() + self._ttl, ledger_fields(record))
            return True

    def get(self, submit_key: str) -> LedgerRecord | None:
        with self._mutex:
            fields = self._live(submit_key)
            return None if fields is None else ledger_from_fields(fields)

    def mark_submitted(self, submit_key: str, job_ids: Sequence[str]) -> None:
        ids = dump_json([str(j) for j in job_ids], "ledger job ids")
        self._update(submit_key, {"state": LedgerState.SUBMITTED, "job_ids": ids})

    def mark_failed(self, submit_key: str, detail: str) -> None:
        self._update(submit_key, {"state": LedgerState.FAILED, "detail": detail})

    def _update(self, submit_key: str, changes: Fields) -> None:
        with self._mutex:
            fields = self._live(submit_key)
            if fields is None:
                raise PermanentError(f"submit key {submit_key!r} was never claimed")
            fields.update(changes)

    def _live(self, submit_key: str) -> Fields | None:
        expires, fields = self._records.get(submit_key, (0.0, None))
        if fields is not None and expires <= self._clock():
            del self._records[submit_key]
            return None
        return fields


class MemoryFailedSubmits:
    """FailedSubmits in memory."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._records: dict[str, str] = {}

    def add(self, failed: FailedSubmit) -> None:
        text = failed_to_json(failed)
        with self._mutex:
            self._records[failed.failed_id] = text

    def list(self) -> list[FailedSubmit]:
        with self._mutex:
            texts = list(self._records.values())
        return sorted(map(failed_from_json, texts), key=lambda f: (f.failed_at, f.failed_id))

    def get(self, failed_id: str) -> FailedSubmit | None:
        with self._mutex:
            text = self._records.get(failed_id)
        return None if text is None else failed_from_json(text)

    def remove(self, failed_id: str) -> bool:
        with self._mutex:
            return self._records.pop(failed_id, None) is not None


class MemoryLocks:
    """Locks in memory, expiring by the injected clock."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._mutex = threading.Lock()
        self._held: dict[str, tuple[str, float]] = {}

    def acquire(self, name: str, ttl: float, owner: str = "") -> str | None:
        ttl_ms = lock_ttl_ms(name, ttl)
        with self._mutex:
            holder = self._held.get(name)
            if holder is not None and holder[1] > self._clock():
                return None
            token = lock_token(owner)
            self._held[name] = (token, self._clock() + ttl_ms / 1000.0)
            return token

    def release(self, name: str, token: str) -> bool:
        with self._mutex:
            holder = self._held.get(name)
            if holder is None or holder[0] != token or holder[1] <= self._clock():
                return False
            del self._held[name]
            return True

    def holder(self, name: str) -> str | None:
        with self._mutex:
            held = self._held.get(name)
            return held[0] if held is not None and held[1] > self._clock() else None


class MemoryTimeSeries:
    """TimeSeries in memory: per (entry, resolution) a sorted list of (bucket, member)."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._buffers: dict[tuple[str, Resolution], list[tuple[float, str]]] = {}

    def add(self, entry: str, now: float, values: Mapping[str, float]) -> None:
        members = {r: sample_member(r.bucket_start(now), values) for r in Resolution}
        with self._mutex:
            for resolution, member in members.items():
                bucket = resolution.bucket_start(now)
                buffer = self._buffers.setdefault((entry, resolution), [])
                kept = [p for p in buffer if p[0] != bucket and p[0] >= resolution.oldest_kept(now)]
                bisect.insort(kept, (bucket, member))
                self._buffers[(entry, resolution)] = kept

    def series(self, entry: str, resolution: str, since: float) -> list[Point]:
        key = (entry, parse_resolution(resolution))
        with self._mutex:
            buffer = list(self._buffers.get(key, []))
        return [sample_from_member(member) for bucket, member in buffer if bucket >= since]


def inflight_to_json(record: InflightSubmit) -> str:
    return dump_json(asdict(record), f"in-flight submit {record.submit_key!r}")


def inflight_from_json(submit_key: str, text: str) -> InflightSubmit:
    """The in-flight record stored under ``submit_key``.

    Raises:
        PermanentError: the stored text is not JSON or not an in-flight record.
    """
    what = f"in-flight submit record {submit_key!r}"
    data = load_json(text, what)
    try:
        return InflightSubmit(**data)
    except TypeError as exc:
        raise PermanentError(f"{what} is malformed: {exc}") from exc


def inflights_from_json(texts: Mapping[str, str]) -> list[InflightSubmit]:
    """The records of one entry (submit key -> JSON text), oldest first."""
    records = [inflight_from_json(key, text) for key, text in texts.items()]
    return sorted(records, key=lambda r: r.queued_at)


class MemoryInflightSubmits:
    """InflightSubmits in memory, kept as the JSON texts the Redis adapter keeps."""

    def __init__(self) -> None:
        self._by_entry: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    def add(self, record: InflightSubmit) -> None:
        text = inflight_to_json(record)
        with self._lock:
            self._by_entry.setdefault(record.entry, {})[record.submit_key] = text

    def list(self, entry: str) -> list[InflightSubmit]:
        with self._lock:
            texts = dict(self._by_entry.get(entry, {}))
        return inflights_from_json(texts)

    def done(self, entry: str, submit_key: str) -> None:
        with self._lock:
            self._by_entry.get(entry, {}).pop(submit_key, None)


class MemoryState:
    """Every state port in memory; one attribute per port (their method names overlap).

    Args:
        clock: drives the expiry of locks, ledger records, job markers and minute buckets.
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
        clock: Clock = time.monotonic,
        ledger_ttl: float = DEFAULT_LEDGER_TTL,
        recent_keep: int = DEFAULT_RECENT_KEEP,
    ) -> None:
        self.entries = MemoryEntryState()
        self.ledger = MemorySubmitLedger(clock, ledger_ttl)
        self.failed = MemoryFailedSubmits()
        self.locks = MemoryLocks(clock)
        self.series = MemoryTimeSeries()
        self.inflight = MemoryInflightSubmits()
        self.completed = MemoryCompletedGlideins(clock, recent_keep)
        self.counters = MemoryCounters()
