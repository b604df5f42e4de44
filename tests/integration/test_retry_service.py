"""Retrying failed submits on the in-memory twins: idempotent, within limits, failing closed."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest

from gwms_tasks.adapters.memory_backend import MemoryGridBackend, Operation
from gwms_tasks.adapters.memory_dashboard import MemoryDashboardHub
from gwms_tasks.adapters.memory_dispatcher import MemoryDispatcher
from gwms_tasks.adapters.memory_state import MemoryState
from gwms_tasks.adapters.user_keys import MemoryUserKeys
from gwms_tasks.core.ads import AdType
from gwms_tasks.core.crypto import FactoryKey
from gwms_tasks.core.downtimes import Downtimes, parse_downtimes
from gwms_tasks.core.envelope import UserKey
from gwms_tasks.core.keyring import Keyring
from gwms_tasks.core.staging import SignedDescription, SignType, StagingIndex
from gwms_tasks.errors import TransientError
from gwms_tasks.ports import (
    EntrySnapshot,
    FailedSubmit,
    GlideinTags,
    InflightSubmit,
    JsonDict,
    Submission,
)
from gwms_tasks.services.deps import FactoryDeps
from gwms_tasks.services.find_work import entry_lock, find_work
from gwms_tasks.services.orders import SubmitOrder
from gwms_tasks.services.retry import (
    RetryStatus,
    retries_of,
    retry_all,
    retry_failed,
    retry_key,
)
from gwms_tasks.services.submit import UserDeps, execute_submit, record_failed_submit
from tests.builders import FrontendSide, example_config

ENTRY = "simulated_site"
CMS = "vofrontend_cms@frontend.cms.example.org"
USER = "fe_cms_pilot"
FRONTEND = "cms_frontend:production"
ENTRY_MAX_IDLE = 200  # examples/factory.yaml, simulated_site
FRONTEND_MAX_IDLE = 100  # the default per-frontend limits


class RefusingDispatcher(MemoryDispatcher):
    """A broker that is down."""

    def send_submit(self, username: str, order: JsonDict) -> None:
        raise TransientError("broker unreachable")


class World:
    """A factory on memory twins with one frontend, one user worker and a failing CE."""

    def __init__(self, factory_key: FactoryKey, user_key: UserKey, tmp: Path) -> None:
        self.now = 1_000_000.0
        self.state = MemoryState(clock=lambda: self.now)
        self.hub = MemoryDashboardHub(clock=lambda: self.now)
        self.backend = MemoryGridBackend(
            "demo_factory", "gfactory_instance", ENTRY, lambda: self.now
        )
        self.dispatcher = MemoryDispatcher()
        self.downtimes = Downtimes()
        self.frontend = FrontendSide(factory_key)
        user_keys = MemoryUserKeys()
        user_keys.publish(USER, user_key.public_pem)
        index = StagingIndex(
            SignType.SHA1,
            SignedDescription("description.aaaa.cfg", "a" * 40),
            {ENTRY: SignedDescription("description.bbbb.cfg", "b" * 40)},
        )
        self.deps = FactoryDeps(
            config=example_config(),
            state=self.state,
            dashboard=self.hub.handle("factory"),
            backend_for=lambda entry: self.backend,
            dispatcher=self.dispatcher,
            user_keys=user_keys,
            keyring=lambda: Keyring(factory_key),
            downtimes=lambda: self.downtimes,
            staging=lambda: index,
            clock=lambda: self.now,
        )
        self.user = UserDeps(
            username=USER,
            state=self.state,
            backend_for=lambda entry: self.backend,
            user_key=user_key,
            credential_dir=tmp / "creds",
            clock=lambda: self.now,
        )
        self._runs = 0

    def failed_submit(self, idle: int) -> FailedSubmit:
        """A request of ``idle`` glideins whose submit the CE refused for good."""
        self._runs += 1
        self.hub.handle(CMS).advertise(
            AdType.GLIDECLIENT, [self.frontend.request(ENTRY, idle=idle, max_glideins=500)]
        )
        find_work(self.deps, ENTRY, f"run-{self._runs}")
        [raw] = self.dispatcher.submits.pop(USER)
        order = SubmitOrder.from_json(raw)
        key = order.tags.submit_key
        record_failed_submit(self.user, order, "the CE refused the job", failed_id=key)
        failed = self.state.failed.get(key)
        assert failed is not None
        return failed

    def set_counts(self, entry_idle: int = 0, frontend_idle: int = 0) -> None:
        """Waiting glideins in the entry's queue (the frontend's are part of the entry's)."""
        self.queue(frontend_idle, FRONTEND)
        self.queue(entry_idle - frontend_idle, "other_frontend:main")

    def queue(self, count: int, frontend: str) -> None:
        """``count`` glideins of ``frontend`` (``name:security_class``) waiting in the queue."""
        tags = GlideinTags(
            "demo_factory", "gfactory_instance", ENTRY, "x.main", "main", "c", frontend, USER, "q"
        )
        self.backend.submit(Submission(tags, count, ()))

    def sent(self) -> list[SubmitOrder]:
        return [SubmitOrder.from_json(raw) for raw in self.dispatcher.submits.get(USER, [])]


@pytest.fixture(scope="module")
def keys() -> tuple[FactoryKey, UserKey]:
    return FactoryKey.generate(), UserKey.generate()


@pytest.fixture
def world(keys: tuple[FactoryKey, UserKey], tmp_path: Path) -> World:
    return World(keys[0], keys[1], tmp_path)


def test_a_failed_submit_is_sent_again_under_a_new_key(world: World) -> None:
    failed = world.failed_submit(idle=5)
    assert world.state.inflight.list(ENTRY) == []
    outcome = retry_failed(world.deps, failed.failed_id)
    assert (outcome.status, outcome.count) == (RetryStatus.SENT, 5)
    assert outcome.submit_key == f"{failed.submit_key}-r1"
    [order] = world.sent()
    assert (order.tags.submit_key, order.count) == (outcome.submit_key, 5)
    assert order.arguments == tuple(failed.task_args["arguments"])
    assert order.reason.startswith(f"retry of {failed.failed_id}: submit 5")
    assert world.state.failed.list() == []
    [inflight] = world.state.inflight.list(ENTRY)
    assert (inflight.submit_key, inflight.count) == (outcome.submit_key, 5)
    ledger = world.state.ledger.get(outcome.submit_key)
    assert ledger is not None and (ledger.state, ledger.count) == ("claimed", 5)
    execute_submit(world.user, order)
    glideins = world.backend.query()
    assert len(glideins) == 5
    assert {g.submit_key for g in glideins} == {outcome.submit_key}


def test_an_operator_with_a_stale_view_is_told_it_was_already_retried(world: World) -> None:
    failed = world.failed_submit(idle=4)
    first = retry_failed(world.deps, failed.failed_id)
    world.state.failed.add(failed)  # a second operator still sees the failed record
    second = retry_failed(world.deps, failed.failed_id)
    assert first.status is RetryStatus.SENT
    assert second.status is RetryStatus.ALREADY_RETRIED
    assert second.submit_key == first.submit_key
    assert "claimed" in second.detail
    assert len(world.sent()) == 1
    assert world.state.failed.get(failed.failed_id) is not None, "the retry may still be sending"


def test_the_stale_failed_record_goes_once_the_retry_ran(world: World) -> None:
    failed = world.failed_submit(idle=4)
    retry_failed(world.deps, failed.failed_id)
    execute_submit(world.user, world.sent()[0])
    world.state.failed.add(failed)
    again = retry_failed(world.deps, failed.failed_id)
    assert again.status is RetryStatus.ALREADY_RETRIED and "submitted" in again.detail
    assert world.state.failed.list() == []
    assert len(world.sent()) == 1


def test_two_operators_retrying_at_the_same_time_send_it_once(world: World) -> None:
    failed = world.failed_submit(idle=4)
    start = threading.Barrier(2)
    outcomes = []

    def operator() -> None:
        start.wait()
        outcomes.append(retry_failed(world.deps, failed.failed_id))

    threads = [threading.Thread(target=operator) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(o.status == RetryStatus.SENT for o in outcomes) == [False, True]
    assert len(world.sent()) == 1
    assert sum(record.count for record in world.state.inflight.list(ENTRY)) == 4


def test_the_count_is_clamped_by_the_entry_max_idle(world: World) -> None:
    failed = world.failed_submit(idle=5)
    world.set_counts(entry_idle=ENTRY_MAX_IDLE - 2)
    outcome = retry_failed(world.deps, failed.failed_id)
    assert (outcome.status, outcome.count, outcome.reason) == (
        RetryStatus.SENT,
        2,
        "entry_max_idle",
    )
    assert "limited by entry max idle" in outcome.detail
    assert [order.count for order in world.sent()] == [2]


def test_submits_in_flight_count_against_the_frontend_limit(world: World) -> None:
    failed = world.failed_submit(idle=5)
    world.set_counts(entry_idle=90, frontend_idle=90)
    world.state.inflight.add(
        InflightSubmit(
            "other", ENTRY, "cms_frontend.main", "production", "c2", FRONTEND, 7, world.now
        )
    )
    outcome = retry_failed(world.deps, failed.failed_id)
    assert (outcome.count, outcome.reason) == (FRONTEND_MAX_IDLE - 97, "frontend_max_idle")


def test_no_room_left_refuses_and_changes_nothing(world: World) -> None:
    failed = world.failed_submit(idle=5)
    world.set_counts(entry_idle=ENTRY_MAX_IDLE)
    outcome = retry_failed(world.deps, failed.failed_id)
    assert (outcome.status, outcome.reason) == (RetryStatus.REFUSED, "entry_max_idle")
    assert outcome.detail.startswith("submit 0: blocked by entry max idle")
    assert world.sent() == []
    assert world.state.failed.get(failed.failed_id) == failed
    assert world.state.ledger.get(retry_key(failed)) is None
    assert world.state.inflight.list(ENTRY) == []


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        ("query_failed", "query_failed"),
        ("entry_downtime", "entry_downtime"),
        ("frontend_downtime", "frontend_downtime"),
    ],
)
def test_a_failed_query_or_a_downtime_refuses(world: World, spoil: str, reason: str) -> None:
    failed = world.failed_submit(idle=5)
    if spoil == "query_failed":
        world.backend.fail_next(Operation.QUERY, TransientError("schedd unreachable"))
    elif spoil == "entry_downtime":
        world.downtimes = parse_downtimes(f"1970-01-01T00:00:00 None {ENTRY}\n", "test")
    else:
        line = "1970-01-01T00:00:00 None All cms_frontend\n"
        world.downtimes = parse_downtimes(line, "test")
    outcome = retry_failed(world.deps, failed.failed_id)
    assert (outcome.status, outcome.reason) == (RetryStatus.REFUSED, reason)
    assert world.sent() == []
    assert world.state.failed.get(failed.failed_id) == failed


def test_a_failed_query_is_recorded_and_says_the_entry_fails_closed(world: World) -> None:
    failed = world.failed_submit(idle=5)
    world.backend.fail_next(Operation.QUERY, TransientError("schedd unreachable"))
    outcome = retry_failed(world.deps, failed.failed_id)
    assert "fails closed (schedd unreachable)" in outcome.detail
    snapshot = world.state.entries.get_snapshot(ENTRY)
    assert snapshot is not None and snapshot.error == "schedd unreachable"


def test_glideins_submitted_since_the_last_snapshot_count_against_the_limit(
    world: World,
) -> None:
    failed = world.failed_submit(idle=5)
    world.state.entries.put_snapshot(EntrySnapshot(ENTRY, world.now, {}, 0))  # a fresh one
    world.queue(ENTRY_MAX_IDLE - 2, "other_frontend:main")  # submitted and no longer in flight
    outcome = retry_failed(world.deps, failed.failed_id)
    assert (outcome.status, outcome.count, outcome.reason) == (
        RetryStatus.SENT,
        2,
        "entry_max_idle",
    )
    snapshot = world.state.entries.get_snapshot(ENTRY)
    assert snapshot is not None and snapshot.glideins == ENTRY_MAX_IDLE - 2


def test_a_class_no_longer_served_by_that_user_refuses(world: World) -> None:
    failed = world.failed_submit(idle=5)
    world.state.failed.add(replace(failed, task_args=_retag(failed.task_args, username="fe_dune")))
    outcome = retry_failed(world.deps, failed.failed_id)
    assert (outcome.status, outcome.reason) == (RetryStatus.REFUSED, "user_changed")
    assert "served by user fe_cms_pilot, not fe_dune" in outcome.detail


def test_a_malformed_stored_order_refuses(world: World) -> None:
    failed = world.failed_submit(idle=5)
    world.state.failed.add(replace(failed, task_args={"tags": {}}))
    outcome = retry_failed(world.deps, failed.failed_id)
    assert (outcome.status, outcome.reason) == (RetryStatus.REFUSED, "malformed_order")


def test_an_unknown_id_is_not_found(world: World) -> None:
    outcome = retry_failed(world.deps, "nope")
    assert outcome.status is RetryStatus.NOT_FOUND
    assert outcome.describe() == "nope: not found: no such failed submit"


def test_a_retry_waits_for_no_find_work_and_find_work_for_no_retry(world: World) -> None:
    failed = world.failed_submit(idle=5)
    token = world.state.locks.acquire(entry_lock(ENTRY), ttl=30)
    assert token is not None
    outcome = retry_failed(world.deps, failed.failed_id)
    assert (outcome.status, outcome.reason) == (RetryStatus.REFUSED, "entry_busy")
    assert find_work(world.deps, ENTRY, "run-x").status == "busy", "the same lock as find-work"


def test_a_broker_failure_leaves_nothing_claimed_and_the_next_retry_uses_a_new_key(
    world: World,
) -> None:
    failed = world.failed_submit(idle=5)
    broken = replace(world.deps, dispatcher=RefusingDispatcher())
    with pytest.raises(TransientError, match="broker unreachable"):
        retry_failed(broken, failed.failed_id)
    assert world.state.inflight.list(ENTRY) == []
    first_key = retry_key(failed)
    ledger = world.state.ledger.get(first_key)
    assert ledger is not None and ledger.state == "failed"
    kept = world.state.failed.get(failed.failed_id)
    assert kept is not None and retries_of(kept) == 1
    outcome = retry_failed(world.deps, failed.failed_id)
    assert outcome.status is RetryStatus.SENT
    assert outcome.submit_key == f"{failed.submit_key}-r2"


def test_a_retry_that_fails_again_is_retried_under_the_next_number(world: World) -> None:
    failed = world.failed_submit(idle=3)
    retry_failed(world.deps, failed.failed_id)
    [order] = world.sent()
    record_failed_submit(world.user, order, "refused again", failed_id=order.tags.submit_key)
    again = world.state.failed.get(order.tags.submit_key)
    assert again is not None and retries_of(again) == 1
    outcome = retry_failed(world.deps, again.failed_id)
    assert outcome.submit_key == f"{failed.submit_key}-r2"


def test_retry_all_serves_the_oldest_first_within_the_limit(world: World) -> None:
    older = world.failed_submit(idle=4)
    world.now += 1
    newer = world.failed_submit(idle=4)
    world.set_counts(entry_idle=ENTRY_MAX_IDLE - 6)
    outcomes = retry_all(world.deps)
    assert [(o.failed_id, o.count) for o in outcomes] == [
        (older.failed_id, 4),
        (newer.failed_id, 2),
    ]
    assert newer.failed_id != older.failed_id
    assert world.state.failed.list() == []


def _retag(task_args: JsonDict, **tags: str) -> JsonDict:
    return {**task_args, "tags": {**task_args["tags"], **tags}}
