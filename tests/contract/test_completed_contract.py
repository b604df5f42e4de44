"""Contract of CompletedGlideins and Counters, held by the Redis adapters and the memory twins."""

from __future__ import annotations

import dataclasses
import math
import threading

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from gwms_tasks.adapters.memory_completed import MemoryCompletedGlideins
from gwms_tasks.adapters.memory_state import MemoryState
from gwms_tasks.adapters.redis_completed import RedisCompletedGlideins
from gwms_tasks.adapters.redis_state import RedisState
from gwms_tasks.errors import PermanentError, TransientError
from gwms_tasks.keys import Keys
from gwms_tasks.ports import CompletedGlidein, CompletedStats
from tests.contract.conftest import Backend
from tests.redis_server import free_port

State = RedisState | MemoryState
T0 = 1_700_000_040.0  # the start of a minute


def _outcome(job_id: str, at: float = T0 + 5, **changes: object) -> CompletedGlidein:
    base = CompletedGlidein(
        job_id=job_id,
        entry="ce1",
        client="fe1.main",
        security_class="sc1",
        frontend="fe1:sc1",
        finished_at=at,
        result="ok",
        exit_code=0,
        wall_seconds=600.0,
        validation_seconds=30.0,
        payload_seconds=560.0,
        user_jobs=3,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _failed_validation(
    job_id: str, at: float = T0 + 5, client: str = "fe1.main"
) -> CompletedGlidein:
    return _outcome(
        job_id,
        at,
        client=client,
        result="validation_failed",
        exit_code=1,
        wall_seconds=40.5,
        payload_seconds=0.0,
        user_jobs=0,
        failed_script="validate_disk.sh",
        failure_category="WN_Resource",
        failure_detail="10 MB free, 100 MB required",
    )


# ---------------------------------------------------------------------------- record


def test_a_job_is_recorded_once_however_often_it_is_offered(state: State) -> None:
    assert state.completed.record(_outcome("1.0"))

    assert not state.completed.record(_outcome("1.0"))
    assert not state.completed.record(_outcome("1.0", at=T0 + 70, result="killed"))

    assert state.completed.recent("ce1") == [_outcome("1.0")]
    assert state.completed.totals("ce1")["entry"].completed == 1
    assert state.completed.stats("ce1", T0)["entry"] == state.completed.totals("ce1")["entry"]


def test_the_same_job_id_at_another_entry_is_another_glidein(state: State) -> None:
    assert state.completed.record(_outcome("1.0"))
    assert state.completed.record(_outcome("1.0", entry="ce2"))

    assert [o.entry for o in state.completed.recent("ce2")] == ["ce2"]


def test_only_one_of_20_concurrent_records_of_a_job_wins(backend: Backend, state: State) -> None:
    barrier = threading.Barrier(20)
    results: list[bool] = []
    lock = threading.Lock()

    def record() -> None:
        store = RedisState(backend.new_client(), backend.keys) if backend.url else state
        barrier.wait()
        won = store.completed.record(_outcome("7.0"))
        with lock:
            results.append(won)

    threads = [threading.Thread(target=record) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(results) == [False] * 19 + [True]
    assert state.completed.totals("ce1")["entry"].completed == 1


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"job_id": ""}, "job_id must not be empty"),
        ({"entry": ""}, "entry must not be empty"),
        ({"result": "fine"}, "result 'fine' is not one of ok, validation_failed"),
        ({"finished_at": math.nan}, "finished_at must be a finite time"),
        ({"wall_seconds": -1.0}, "wall_seconds must be a number >= 0"),
        ({"payload_seconds": math.inf}, "payload_seconds must be a number >= 0"),
        ({"user_jobs": -2}, "user_jobs must be >= 0"),
    ],
)
def test_an_outcome_that_makes_no_sense_is_refused_and_stores_nothing(
    state: State, changes: dict[str, object], problem: str
) -> None:
    bad = dataclasses.replace(_outcome("1.0"), **changes)  # type: ignore[arg-type]

    with pytest.raises(PermanentError, match=problem):
        state.completed.record(bad)

    assert state.completed.recent(bad.entry) == []
    assert state.completed.totals(bad.entry) == {}
    assert state.completed.last_finished(bad.entry) is None
    assert state.completed.record(_outcome("1.0")), "the job id was not marked as recorded"


# ---------------------------------------------------------------------------- recent


def test_recent_outcomes_come_back_whole_newest_first_up_to_the_limit(state: State) -> None:
    outcomes = [_outcome(f"{i}.0", at=T0 + i) for i in range(4)]
    outcomes[2] = _failed_validation("2.0", at=T0 + 2)
    for outcome in outcomes:
        state.completed.record(outcome)

    assert state.completed.recent("ce1") == outcomes[::-1]
    assert state.completed.recent("ce1", limit=2) == [outcomes[3], outcomes[2]]
    assert state.completed.recent("ce1", limit=0) == []
    assert state.completed.recent("elsewhere") == []


def test_recent_keeps_only_the_configured_number_per_entry(backend: Backend) -> None:
    completed = (
        RedisCompletedGlideins(backend.client, backend.keys, keep=3)
        if backend.client is not None
        else MemoryCompletedGlideins(backend.clock, keep=3)
    )
    for i in range(5):
        completed.record(_outcome(f"{i}.0", at=T0 + i))

    assert [o.job_id for o in completed.recent("ce1", limit=10)] == ["4.0", "3.0", "2.0"]
    assert completed.totals("ce1")["entry"].completed == 5, "the statistics keep every outcome"


def test_a_negative_recent_limit_or_keep_is_refused(backend: Backend, state: State) -> None:
    with pytest.raises(PermanentError, match="limit must be >= 0"):
        state.completed.recent("ce1", limit=-1)
    with pytest.raises(PermanentError, match="keep must be >= 1"):
        if backend.client is not None:
            RedisCompletedGlideins(backend.client, backend.keys, keep=0)
        else:
            MemoryCompletedGlideins(backend.clock, keep=0)


# ---------------------------------------------------------------------------- stats and totals


def test_stats_count_results_jobs_times_waste_and_categories_per_scope(state: State) -> None:
    state.completed.record(_outcome("1.0"))
    state.completed.record(_outcome("2.0", result="payload_failed", exit_code=3, user_jobs=0))
    state.completed.record(_failed_validation("3.0"))
    state.completed.record(_failed_validation("4.0", client="fe2.main"))
    state.completed.record(_outcome("5.0", client="fe2.main", result="killed", user_jobs=1))
    state.completed.record(_outcome("6.0", result="unknown", exit_code=None, user_jobs=0))

    stats = state.completed.stats("ce1", T0)

    assert set(stats) == {"entry", "client:fe1.main", "client:fe2.main"}
    assert stats["entry"] == CompletedStats(
        completed=6,
        ok=1,
        failed_validation=2,
        failed_payload=1,
        killed=1,
        unknown=1,
        user_jobs=4,
        wall_seconds=4 * 600.0 + 2 * 40.5,
        waste_seconds=2 * 600.0 + 2 * 40.5,
        by_category={"WN_Resource": 2},
    )
    assert stats["client:fe2.main"] == CompletedStats(
        completed=2,
        failed_validation=1,
        killed=1,
        user_jobs=1,
        wall_seconds=640.5,
        waste_seconds=40.5,
        by_category={"WN_Resource": 1},
    )
    fe1 = stats["client:fe1.main"]
    assert (fe1.completed, fe1.ok, fe1.failed_payload, fe1.unknown) == (4, 1, 1, 1)


def test_stats_count_the_minutes_from_the_one_holding_since(state: State) -> None:
    state.completed.record(_outcome("1.0", at=T0 + 5))
    state.completed.record(_outcome("2.0", at=T0 + 65))
    state.completed.record(_outcome("3.0", at=T0 + 3600))

    def completed(since: float) -> int:
        return state.completed.stats("ce1", since).get("entry", CompletedStats()).completed

    assert [completed(T0), completed(T0 + 60), completed(T0 + 119), completed(T0 + 120)] == [
        3,
        2,
        2,
        1,
    ]
    assert completed(T0 + 3660) == 0
    assert state.completed.stats("ce1", T0 + 3660) == {}


def test_totals_keep_counting_after_a_window_has_passed(state: State) -> None:
    state.completed.record(_outcome("1.0", at=T0))
    state.completed.record(_outcome("2.0", at=T0 + 3 * 3600))

    assert state.completed.stats("ce1", T0 + 3600)["entry"].completed == 1
    totals = state.completed.totals("ce1")
    assert (totals["entry"].completed, totals["client:fe1.main"].user_jobs) == (2, 6)
    assert state.completed.totals("elsewhere") == {}


def test_a_glidein_without_client_counts_for_the_entry_only(state: State) -> None:
    state.completed.record(_outcome("1.0", client=""))

    assert set(state.completed.totals("ce1")) == {"entry"}


# ---------------------------------------------------------------------------- the read mark


def test_last_finished_is_the_newest_finish_recorded_per_entry(state: State) -> None:
    assert state.completed.last_finished("ce1") is None

    state.completed.record(_outcome("1.0", at=T0 + 30.25))
    state.completed.record(_outcome("2.0", at=T0 + 10))
    state.completed.record(_outcome("3.0", entry="ce2", at=T0 + 99))

    assert state.completed.last_finished("ce1") == T0 + 30.25
    assert state.completed.last_finished("ce2") == T0 + 99


# ---------------------------------------------------------------------------- counters


def test_counters_add_up_per_entry_and_field(state: State) -> None:
    state.counters.add("ce1", {"submitted": 5, "cycle_seconds:monitor": 0.25})
    state.counters.add("ce1", {"submitted": 2, "client:fe1.main:submitted": 2})
    state.counters.add("ce2", {"removed": 1})
    state.counters.add("ce2", {})

    assert state.counters.read("ce1") == {
        "submitted": 7.0,
        "cycle_seconds:monitor": 0.25,
        "client:fe1.main:submitted": 2.0,
    }
    assert state.counters.read("ce2") == {"removed": 1.0}
    assert state.counters.read("elsewhere") == {}


@pytest.mark.parametrize(
    ("value", "problem"),
    [(-1, "got -1"), (math.nan, "got nan"), (True, "got True")],
)
def test_a_counter_that_would_not_grow_is_refused_and_nothing_changes(
    state: State, value: object, problem: str
) -> None:
    state.counters.add("ce1", {"submitted": 1})

    with pytest.raises(PermanentError, match=f"bad: expected a finite number >= 0, {problem}"):
        state.counters.add("ce1", {"submitted": 4, "bad": value})  # type: ignore[dict-item]

    assert state.counters.read("ce1") == {"submitted": 1.0}


# ---------------------------------------------------------------------------- redis specifics


def test_redis_completed_writes_only_keys_named_by_the_keys_module(
    redis_client: redis.Redis,
) -> None:
    keys = Keys("gwmstest")
    state = RedisState(redis_client, keys)
    state.completed.record(_outcome("1.0"))
    state.counters.add("ce1", {"submitted": 1})

    written = {k.decode() for k in redis_client.scan_iter(match="*")}

    assert written == {
        keys.completed_seen("ce1", "1.0"),
        keys.completed("ce1"),
        keys.completed_minute("ce1", int(T0)),
        keys.completed_minutes("ce1"),
        keys.completed_totals("ce1"),
        keys.completed_mark("ce1"),
        keys.counters("ce1"),
    }
    ttl = redis_client.ttl(keys.completed_minute("ce1", int(T0)))
    assert 24 * 3600 < int(ttl) <= 25 * 3600  # type: ignore[arg-type]
    assert int(redis_client.ttl(keys.completed_totals("ce1"))) == -1  # type: ignore[arg-type]


def test_a_corrupt_stored_outcome_is_a_permanent_error(redis_client: redis.Redis) -> None:
    keys = Keys("gwmstest")
    redis_client.lpush(keys.completed("ce1"), "{not json")

    with pytest.raises(PermanentError, match="malformed"):
        RedisState(redis_client, keys).completed.recent("ce1")


def test_unreachable_redis_is_a_transient_error_for_completed_and_counters() -> None:
    client = redis.Redis(
        host="127.0.0.1", port=free_port(), socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
    )
    store = RedisState(client, Keys())

    with pytest.raises(TransientError, match="Redis unavailable"):
        store.completed.record(_outcome("1.0"))
    with pytest.raises(TransientError):
        store.counters.add("ce1", {"submitted": 1})
