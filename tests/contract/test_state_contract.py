"""Contract of the state ports, held by RedisState and its twin MemoryState alike."""

from __future__ import annotations

import math
import threading

import pytest
import redis

from gwms_tasks.adapters.memory_state import LedgerState, MemoryState
from gwms_tasks.adapters.redis_state import RedisState
from gwms_tasks.errors import PermanentError, TransientError
from gwms_tasks.keys import Keys
from gwms_tasks.ports import EntrySnapshot, FailedSubmit, InflightSubmit
from tests.contract.conftest import Backend, StateFactory
from tests.redis_server import free_port

State = RedisState | MemoryState
DAY = 24 * 3600.0
T0 = 1_700_000_040.0  # the start of a minute and of an hour


# ---------------------------------------------------------------------------- submit ledger


def test_ledger_claim_succeeds_exactly_once_under_20_concurrent_threads(
    backend: Backend, make_state: StateFactory
) -> None:
    threads_count = 20
    barrier = threading.Barrier(threads_count)
    results: list[bool] = []
    results_lock = threading.Lock()

    def claim() -> None:
        # Each thread its own connection, as separate workers would have.
        store = RedisState(backend.new_client(), backend.keys) if backend.url else shared
        barrier.wait()
        won = store.ledger.claim("fe1-ce1-42", "ce1", 5, now=T0)
        with results_lock:
            results.append(won)

    shared = make_state()
    threads = [threading.Thread(target=claim) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(results) == [False] * 19 + [True]


def test_claimed_record_remembers_entry_count_and_claim_time(state: State) -> None:
    assert state.ledger.claim("k1", "ce1", 7, now=T0)

    record = state.ledger.get("k1")

    assert record is not None
    assert (record.submit_key, record.entry, record.count) == ("k1", "ce1", 7)
    assert (record.state, record.claimed_at, record.job_ids) == (LedgerState.CLAIMED, T0, ())


def test_second_claim_of_a_key_loses_and_keeps_the_first_record(state: State) -> None:
    state.ledger.claim("k1", "ce1", 7, now=T0)

    assert not state.ledger.claim("k1", "ce2", 3, now=T0 + 5)
    record = state.ledger.get("k1")
    assert record is not None and (record.entry, record.count) == ("ce1", 7)


def test_unknown_submit_key_has_no_record(state: State) -> None:
    assert state.ledger.get("never") is None


def test_submitted_record_carries_its_job_ids(state: State) -> None:
    state.ledger.claim("k1", "ce1", 2, now=T0)

    state.ledger.mark_submitted("k1", ["12.0", "12.1"])

    record = state.ledger.get("k1")
    assert record is not None
    assert (record.state, record.job_ids) == (LedgerState.SUBMITTED, ("12.0", "12.1"))
    assert (record.entry, record.count, record.claimed_at) == ("ce1", 2, T0)


def test_failed_record_carries_the_reason_and_is_not_claimable_again(state: State) -> None:
    state.ledger.claim("k1", "ce1", 2, now=T0)

    state.ledger.mark_failed("k1", "schedd refused: bad proxy")

    record = state.ledger.get("k1")
    assert record is not None
    assert (record.state, record.detail) == (LedgerState.FAILED, "schedd refused: bad proxy")
    assert not state.ledger.claim("k1", "ce1", 2, now=T0 + 1)


@pytest.mark.parametrize("mark", ["submitted", "failed"])
def test_marking_a_key_that_was_never_claimed_is_refused_and_stores_nothing(
    state: State, mark: str
) -> None:
    with pytest.raises(PermanentError, match="never claimed"):
        if mark == "submitted":
            state.ledger.mark_submitted("ghost", ["1.0"])
        else:
            state.ledger.mark_failed("ghost", "x")

    assert state.ledger.get("ghost") is None


@pytest.mark.parametrize(("key", "count"), [("", 1), ("k", 0), ("k", -3)])
def test_claim_without_a_key_or_glideins_is_refused(state: State, key: str, count: int) -> None:
    with pytest.raises(PermanentError):
        state.ledger.claim(key, "ce1", count, now=T0)


def test_ledger_record_expires_after_its_ttl(backend: Backend, make_state: StateFactory) -> None:
    store = make_state(ledger_ttl=0.3)
    store.ledger.claim("k1", "ce1", 1, now=T0)

    backend.advance(0.5)

    assert store.ledger.get("k1") is None
    assert store.ledger.claim("k1", "ce1", 1, now=T0 + 1)


# ---------------------------------------------------------------------------- failed submits


def _failed(failed_id: str, at: float, retries: int = 0) -> FailedSubmit:
    return FailedSubmit(
        failed_id=failed_id,
        submit_key=f"key-{failed_id}",
        entry="ce1",
        client="fe1.main",
        count=3,
        reason="grid refused: proxy expired",
        failed_at=at,
        task_args={"entry": "ce1", "tags": {"frontend": "fe1:main"}, "ids": [1, 2]},
        retries=retries,
    )


def test_failed_submits_are_listed_oldest_first_and_read_back_whole(state: State) -> None:
    later, earlier = _failed("b", T0 + 60), _failed("a", T0)
    state.failed.add(later)
    state.failed.add(earlier)

    assert state.failed.list() == [earlier, later]
    assert state.failed.get("b") == later
    assert state.failed.get("zzz") is None


def test_adding_a_failed_submit_again_replaces_it(state: State) -> None:
    state.failed.add(_failed("a", T0))

    state.failed.add(_failed("a", T0 + 5, retries=1))

    assert state.failed.list() == [_failed("a", T0 + 5, retries=1)]


def test_removing_a_failed_submit_reports_whether_it_was_there(state: State) -> None:
    state.failed.add(_failed("a", T0))

    assert state.failed.remove("a")
    assert not state.failed.remove("a")
    assert state.failed.list() == []


def test_failed_submit_with_arguments_that_are_not_json_is_refused(state: State) -> None:
    bad = FailedSubmit("x", "k", "ce1", "c", 1, "r", T0, task_args={"when": object()})

    with pytest.raises(PermanentError, match="JSON"):
        state.failed.add(bad)
    assert state.failed.list() == []


# ---------------------------------------------------------------------------- locks


def test_a_held_lock_cannot_be_acquired_by_someone_else(state: State) -> None:
    assert state.locks.acquire("find-work:ce1", ttl=30) is not None

    assert state.locks.acquire("find-work:ce1", ttl=30) is None
    assert state.locks.acquire("find-work:ce2", ttl=30) is not None


def test_an_expired_lock_can_be_acquired_again(backend: Backend, state: State) -> None:
    state.locks.acquire("find-work:ce1", ttl=0.2)

    backend.advance(0.4)

    assert state.locks.acquire("find-work:ce1", ttl=30) is not None


def test_only_the_owner_token_releases_a_lock(state: State) -> None:
    token = state.locks.acquire("find-work:ce1", ttl=30)
    assert token is not None

    assert not state.locks.release("find-work:ce1", "not-the-token")
    assert state.locks.acquire("find-work:ce1", ttl=30) is None
    assert state.locks.release("find-work:ce1", token)
    assert not state.locks.release("find-work:ce1", token)
    assert state.locks.acquire("find-work:ce1", ttl=30) is not None


def test_owner_whose_lock_expired_cannot_release_the_next_holders_lock(
    backend: Backend, state: State
) -> None:
    stale = state.locks.acquire("find-work:ce1", ttl=0.2)
    backend.advance(0.4)
    current = state.locks.acquire("find-work:ce1", ttl=30)
    assert stale is not None and current is not None and stale != current

    assert not state.locks.release("find-work:ce1", stale)
    assert state.locks.acquire("find-work:ce1", ttl=30) is None


@pytest.mark.parametrize("ttl", [0.0, -1.0, math.nan])
def test_a_lock_without_a_positive_ttl_is_refused(state: State, ttl: float) -> None:
    with pytest.raises(PermanentError, match="ttl"):
        state.locks.acquire("find-work:ce1", ttl=ttl)


# ---------------------------------------------------------------------------- time series


def test_latest_sample_in_a_bucket_wins_at_both_resolutions(state: State) -> None:
    state.series.add("ce1", T0 + 1, {"idle": 1})
    state.series.add("ce1", T0 + 50, {"idle": 2, "running": 4})

    assert state.series.series("ce1", "minute", 0) == [(T0, {"idle": 2.0, "running": 4.0})]
    hour = T0 - T0 % 3600
    assert state.series.series("ce1", "hour", 0) == [(hour, {"idle": 2.0, "running": 4.0})]


def test_points_come_back_in_time_order_with_their_bucket_start(state: State) -> None:
    for offset, idle in [(130, 3), (5, 1), (61, 2)]:
        state.series.add("ce1", T0 + offset, {"idle": idle})

    points = state.series.series("ce1", "minute", 0)

    assert points == [(T0, {"idle": 1.0}), (T0 + 60, {"idle": 2.0}), (T0 + 120, {"idle": 3.0})]


def test_series_since_leaves_out_earlier_buckets(state: State) -> None:
    for offset in (0, 60, 120):
        state.series.add("ce1", T0 + offset, {"idle": offset})

    assert [t for t, _ in state.series.series("ce1", "minute", T0 + 60)] == [T0 + 60, T0 + 120]


def test_minute_points_are_kept_a_day_and_hour_points_a_month(state: State) -> None:
    state.series.add("ce1", T0, {"idle": 1})
    state.series.add("ce1", T0 + 60, {"idle": 2})

    state.series.add("ce1", T0 + DAY, {"idle": 3})

    minutes = state.series.series("ce1", "minute", 0)
    assert [t for t, _ in minutes] == [T0 + 60, T0 + DAY]
    assert len(state.series.series("ce1", "hour", 0)) == 2

    state.series.add("ce1", T0 + 31 * DAY, {"idle": 4})

    hours = state.series.series("ce1", "hour", 0)
    assert [v["idle"] for _, v in hours] == [3.0, 4.0]


def test_entries_have_separate_series(state: State) -> None:
    state.series.add("ce1", T0, {"idle": 1})
    state.series.add("ce2", T0, {"idle": 9})

    assert state.series.series("ce1", "minute", 0) == [(T0, {"idle": 1.0})]
    assert state.series.series("ce3", "hour", 0) == []


def test_unknown_resolution_is_refused(state: State) -> None:
    with pytest.raises(PermanentError, match="resolution"):
        state.series.series("ce1", "second", 0)


@pytest.mark.parametrize("bad", [math.nan, math.inf, "many"])
def test_sample_that_is_not_a_finite_number_is_refused_and_stores_nothing(
    state: State, bad: object
) -> None:
    with pytest.raises(PermanentError):
        state.series.add("ce1", T0, {"idle": bad})  # type: ignore[dict-item]

    assert state.series.series("ce1", "minute", 0) == []


# ---------------------------------------------------------------------------- entry state


def _snapshot(entry: str = "ce1", at: float = T0, idle: int = 4) -> EntrySnapshot:
    counts = {"entry": {"idle": idle, "running": 2}, "client:fe1.main": {"idle": idle}}
    return EntrySnapshot(entry=entry, taken_at=at, counts=counts, glideins=idle + 2)


def test_snapshot_round_trips(state: State) -> None:
    state.entries.put_snapshot(_snapshot())

    assert state.entries.get_snapshot("ce1") == _snapshot()
    assert state.entries.get_snapshot("ce2") is None


def test_query_failure_keeps_the_old_counts_but_records_the_error(state: State) -> None:
    state.entries.put_snapshot(_snapshot())

    state.entries.record_query_failure("ce1", "schedd timed out", now=T0 + 300)

    snapshot = state.entries.get_snapshot("ce1")
    assert snapshot is not None
    assert snapshot.error == "schedd timed out"
    assert (snapshot.taken_at, snapshot.counts, snapshot.glideins) == (
        T0,
        _snapshot().counts,
        6,
    )


def test_query_failure_before_any_snapshot_leaves_nothing_to_count_on(state: State) -> None:
    state.entries.record_query_failure("ce1", "schedd unreachable", now=T0)

    snapshot = state.entries.get_snapshot("ce1")

    assert snapshot == EntrySnapshot("ce1", 0.0, {}, 0, error="schedd unreachable")


def test_a_new_snapshot_clears_the_previous_error(state: State) -> None:
    state.entries.record_query_failure("ce1", "schedd timed out", now=T0)

    state.entries.put_snapshot(_snapshot(at=T0 + 60, idle=1))

    assert state.entries.get_snapshot("ce1") == _snapshot(at=T0 + 60, idle=1)


def test_decisions_round_trip_per_client(state: State) -> None:
    first = {"submit": 3, "reason": "requested_idle", "inputs": {"idle": 1, "limits": [1, 2]}}
    second = {"submit": 0, "reason": "in_downtime", "inputs": {}}
    state.entries.put_decision("ce1", "fe1.main", first)
    state.entries.put_decision("ce1", "fe2.main", second)
    state.entries.put_decision("ce2", "fe1.main", second)

    assert state.entries.get_decision("ce1", "fe1.main") == first
    assert state.entries.decisions("ce1") == {"fe1.main": first, "fe2.main": second}
    assert state.entries.get_decision("ce1", "fe3.main") is None
    assert state.entries.decisions("ce9") == {}


def test_a_stored_decision_does_not_change_when_the_caller_mutates_its_dict(
    state: State,
) -> None:
    inputs = {"idle": 1}
    state.entries.put_decision("ce1", "fe1.main", {"submit": 3, "inputs": inputs})

    inputs["idle"] = 99

    assert state.entries.get_decision("ce1", "fe1.main") == {"submit": 3, "inputs": {"idle": 1}}


def test_decision_that_is_not_json_is_refused(state: State) -> None:
    with pytest.raises(PermanentError, match="JSON"):
        state.entries.put_decision("ce1", "fe1.main", {"at": {1, 2}})

    assert state.entries.decisions("ce1") == {}


# ---------------------------------------------------------------------------- redis specifics


def test_redis_state_writes_only_keys_named_by_the_keys_module(redis_client: redis.Redis) -> None:
    keys = Keys("gwmstest")
    state = RedisState(redis_client, keys)
    state.entries.put_snapshot(_snapshot())
    state.entries.put_decision("ce1", "fe1.main", {"submit": 1})
    state.ledger.claim("k1", "ce1", 1, now=T0)
    state.failed.add(_failed("a", T0))
    state.locks.acquire("find-work:ce1", ttl=30)
    state.series.add("ce1", T0, {"idle": 1})

    written = {k.decode() for k in redis_client.scan_iter(match="*")}

    assert written == {
        keys.snapshot("ce1"),
        keys.decisions("ce1"),
        keys.ledger("k1"),
        keys.failed_submits(),
        keys.lock("find-work:ce1"),
        keys.time_series("ce1", "minute"),
        keys.time_series("ce1", "hour"),
    }


def test_unreachable_redis_is_a_transient_error() -> None:
    client = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)
    store = RedisState(client, Keys())

    with pytest.raises(TransientError, match="Redis unavailable"):
        store.ledger.claim("k1", "ce1", 1, now=T0)
    with pytest.raises(TransientError):
        store.entries.get_snapshot("ce1")


def _inflight(key: str, entry: str = "ce1", queued_at: float = 10.0) -> InflightSubmit:
    return InflightSubmit(key, entry, "fe.main", "sc", "cred", "fe:sc", 3, queued_at)


def test_inflight_submits_are_listed_per_entry_in_queue_order(state: State) -> None:
    state.inflight.add(_inflight("k2", queued_at=20.0))
    state.inflight.add(_inflight("k1", queued_at=10.0))
    state.inflight.add(_inflight("k3", entry="ce2"))
    assert [r.submit_key for r in state.inflight.list("ce1")] == ["k1", "k2"]
    assert state.inflight.list("ce1")[0] == _inflight("k1")
    state.inflight.done("ce1", "k1")
    state.inflight.done("ce1", "never-there")
    assert [r.submit_key for r in state.inflight.list("ce1")] == ["k2"]
    assert [r.submit_key for r in state.inflight.list("ce2")] == ["k3"]


def test_inflight_record_that_is_not_json_is_refused_and_stores_nothing(state: State) -> None:
    with pytest.raises(PermanentError, match="in-flight submit 'k1'"):
        state.inflight.add(_inflight("k1", queued_at=math.nan))
    assert state.inflight.list("ce1") == []


def test_a_corrupt_stored_inflight_record_is_a_permanent_error_naming_it(
    redis_client: redis.Redis,
) -> None:
    keys = Keys("gwmstest")
    state = RedisState(redis_client, keys)
    state.inflight.add(_inflight("k1"))
    redis_client.hset(keys.inflight("ce1"), "k2", '{"submit_key": "k2", "entry": "ce1"}')
    with pytest.raises(PermanentError, match="in-flight submit record 'k2' is malformed"):
        state.inflight.list("ce1")
    redis_client.hset(keys.inflight("ce1"), "k2", "{not json")
    with pytest.raises(PermanentError, match="in-flight submit record 'k2' holds corrupt JSON"):
        state.inflight.list("ce1")
