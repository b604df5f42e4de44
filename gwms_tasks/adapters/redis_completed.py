"""Completed-glidein statistics and monitoring counters in Redis.

Layout (key names from :mod:`gwms_tasks.keys`; the codec and the meaning of the hash fields are
in :mod:`gwms_tasks.adapters.memory_completed`):
    completed(e)              list    recent outcomes (JSON), newest first, capped at ``keep``
    completed_seen(e, id)     string  "1" once the job is recorded (``SET NX PX``: idempotency)
    completed_minute(e, t)    hash    stats of the outcomes that finished in minute ``t``,
                                      expiring ``STATS_SPAN`` after its last write
    completed_minutes(e)      zset    the minute buckets kept, member and score their start
    completed_totals(e)       hash    stats since recording began (never expires)
    completed_mark(e)         string  the largest ``finished_at`` recorded
    counters(e)               hash    monotonic counters (``HINCRBYFLOAT``)

``record`` is one Lua script: the marker, the list, both hashes, the bucket index and the mark
change together or not at all, and a second record of the same job changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import redis
from redis.typing import EncodableT

from gwms_tasks.adapters.memory_completed import (
    DEFAULT_RECENT_KEEP,
    DEFAULT_SEEN_TTL,
    STATS_SPAN,
    check_counter_values,
    check_keep,
    check_limit,
    minute_start,
    outcome_from_json,
    outcome_to_json,
    stat_increments,
    stats_from_fields,
)
from gwms_tasks.adapters.redis_state import redis_errors, text, text_hash
from gwms_tasks.errors import PermanentError
from gwms_tasks.keys import Keys
from gwms_tasks.ports import CompletedGlidein, CompletedStats

# KEYS: seen, recent, minute, minutes, totals, mark.
# ARGV: seen ttl ms, keep, minute ttl ms, minute start, oldest minute kept, outcome JSON,
#       finished_at, then field/increment pairs.
_RECORD = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[6])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
for i = 8, #ARGV, 2 do
  redis.call('HINCRBYFLOAT', KEYS[3], ARGV[i], ARGV[i + 1])
  redis.call('HINCRBYFLOAT', KEYS[5], ARGV[i], ARGV[i + 1])
end
redis.call('PEXPIRE', KEYS[3], ARGV[3])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[5])
local mark = redis.call('GET', KEYS[6])
if not mark or tonumber(ARGV[7]) > tonumber(mark) then redis.call('SET', KEYS[6], ARGV[7]) end
return 1
"""


class RedisCompletedGlideins:
    """CompletedGlideins in Redis.

    Args:
        client: a redis-py client of the state Redis.
        keys: the key names.
        keep: recent outcomes kept per entry.
        seen_ttl: seconds a recorded job id is remembered.
    """

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        keep: int = DEFAULT_RECENT_KEEP,
        seen_ttl: float = DEFAULT_SEEN_TTL,
    ) -> None:
        self._r, self._keys = client, keys
        self._keep = check_keep(keep)
        self._seen_ttl_ms = max(1, int(seen_ttl * 1000))
        self._record = client.register_script(_RECORD)

    def record(self, outcome: CompletedGlidein) -> bool:
        encoded = outcome_to_json(outcome)  # checks it first
        entry, bucket = outcome.entry, minute_start(outcome.finished_at)
        keys = [
            self._keys.completed_seen(entry, outcome.job_id),
            self._keys.completed(entry),
            self._keys.completed_minute(entry, bucket),
            self._keys.completed_minutes(entry),
            self._keys.completed_totals(entry),
            self._keys.completed_mark(entry),
        ]
        args: list[EncodableT] = [
            self._seen_ttl_ms,
            self._keep,
            int(STATS_SPAN * 1000),
            bucket,
            repr(bucket - STATS_SPAN),
            encoded,
            repr(float(outcome.finished_at)),
        ]
        for name, value in stat_increments(outcome).items():
            args += [name, repr(float(value))]
        with redis_errors(f"record completed glidein {outcome.job_id!r} of entry {entry!r}"):
            return bool(self._record(keys=keys, args=args))

    def recent(self, entry: str, limit: int = 50) -> list[CompletedGlidein]:
        count = check_limit(limit)
        if count == 0:
            return []
        with redis_errors(f"read recent completed glideins of entry {entry!r}"):
            texts = cast(list[bytes], self._r.lrange(self._keys.completed(entry), 0, count - 1))
        return [outcome_from_json(text(t)) for t in texts]

    def stats(self, entry: str, since: float) -> dict[str, CompletedStats]:
        with redis_errors(f"read completed-glidein stats of entry {entry!r}"):
            starts = cast(
                list[bytes],
                self._r.zrangebyscore(
                    self._keys.completed_minutes(entry), minute_start(since), "+inf"
                ),
            )
            pipe = self._r.pipeline(transaction=False)
            for start in starts:
                pipe.hgetall(self._keys.completed_minute(entry, int(float(text(start)))))
            replies = pipe.execute() if starts else []
        return stats_from_fields(pair for reply in replies for pair in _pairs(reply))

    def totals(self, entry: str) -> dict[str, CompletedStats]:
        with redis_errors(f"read completed-glidein totals of entry {entry!r}"):
            reply = self._r.hgetall(self._keys.completed_totals(entry))
        return stats_from_fields(_pairs(reply))

    def last_finished(self, entry: str) -> float | None:
        with redis_errors(f"read the completed-glidein mark of entry {entry!r}"):
            reply = self._r.get(self._keys.completed_mark(entry))
        return None if reply is None else _number(cast(bytes, reply), "completed mark")


class RedisCounters:
    """Counters as one hash per entry; ``add`` is one MULTI/EXEC of ``HINCRBYFLOAT``s."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._r, self._keys = client, keys

    def add(self, entry: str, values: Mapping[str, float]) -> None:
        increments = check_counter_values(entry, values)
        if not increments:
            return
        key = self._keys.counters(entry)
        with redis_errors(f"add to the counters of entry {entry!r}"):
            pipe = self._r.pipeline(transaction=True)
            for name, value in increments.items():
                pipe.hincrbyfloat(key, name, value)
            pipe.execute()

    def read(self, entry: str) -> dict[str, float]:
        with redis_errors(f"read the counters of entry {entry!r}"):
            found = text_hash(self._r.hgetall(self._keys.counters(entry)))
        return {name: _number(value, f"counter {name!r}") for name, value in found.items()}


def _pairs(reply: object) -> list[tuple[str, float]]:
    return [(name, _number(value, name)) for name, value in text_hash(reply).items()]


def _number(value: bytes | str, what: str) -> float:
    try:
        return float(text(value))
    except ValueError:
        raise PermanentError(f"{what} holds a non-number: {value!r}") from None
