"""Find-work and submit services end to end on the in-memory twins of every port."""

from __future__ import annotations

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
from gwms_tasks.errors import PermanentError, TransientError
from gwms_tasks.ports import GlideinTags, LedgerState, Submission
from gwms_tasks.services.deps import FactoryDeps
from gwms_tasks.services.find_work import find_work, submit_key_for
from gwms_tasks.services.orders import JobActionOrder, SubmitOrder, order_lifetime
from gwms_tasks.services.submit import (
    SUBMIT_LOCK_SECONDS,
    UserDeps,
    execute_job_action,
    execute_submit,
)
from tests.builders import FrontendSide, example_config

ENTRY = "simulated_site"
CMS = "vofrontend_cms@frontend.cms.example.org"
USER = "fe_cms_pilot"


class World:
    """A factory on memory twins, one frontend writing requests, one user worker."""

    def __init__(self, factory_key: FactoryKey, user_key: UserKey, tmp: Path) -> None:
        self.now = 1_000_000.0
        self.config = example_config()
        self.hub = MemoryDashboardHub(clock=lambda: self.now)
        self.state = MemoryState(clock=lambda: self.now)
        self.backend = MemoryGridBackend(
            "demo_factory", "gfactory_instance", ENTRY, lambda: self.now
        )
        self.dispatcher = MemoryDispatcher()
        self.user_keys = MemoryUserKeys()
        self.user_keys.publish(USER, user_key.public_pem)
        self.downtimes = Downtimes()
        self.frontend = FrontendSide(factory_key)
        index = StagingIndex(
            SignType.SHA1,
            SignedDescription("description.aaaa.cfg", "a" * 40),
            {ENTRY: SignedDescription("description.bbbb.cfg", "b" * 40)},
        )
        self.deps = FactoryDeps(
            config=self.config,
            state=self.state,
            dashboard=self.hub.handle("factory"),
            backend_for=lambda entry: self.backend,
            dispatcher=self.dispatcher,
            user_keys=self.user_keys,
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

    def request(self, **kwargs: object) -> None:
        ad = self.frontend.request(ENTRY, **kwargs)  # type: ignore[arg-type]
        self.hub.handle(CMS).advertise(AdType.GLIDECLIENT, [ad])

    def run_user_orders(self) -> None:
        for order in self.dispatcher.submits.pop(USER, []):
            execute_submit(self.user, SubmitOrder.from_json(order))
        for order in self.dispatcher.job_actions.pop(USER, []):
            execute_job_action(self.user, JobActionOrder.from_json(order))


@pytest.fixture(scope="module")
def keys() -> tuple[FactoryKey, UserKey]:
    return FactoryKey.generate(), UserKey.generate()


@pytest.fixture
def world(keys: tuple[FactoryKey, UserKey], tmp_path: Path) -> World:
    return World(keys[0], keys[1], tmp_path)


def test_a_request_leads_to_exactly_the_requested_glideins(world: World) -> None:
    world.request(idle=5, max_glideins=20)
    result = find_work(world.deps, ENTRY, "run-1")
    assert (result.requests, result.submitted) == (1, 5)
    [order] = world.dispatcher.submits[USER]
    assert "eyJ" not in str(order), "the token must travel sealed"
    world.run_user_orders()
    glideins = world.backend.query()
    assert len(glideins) == 5
    assert {g.client for g in glideins} == {"cms_frontend.main"}
    assert world.state.inflight.list(ENTRY) == []
    token = world.user.credential_dir / f"credential_cms_frontend.main_{ENTRY}.scitoken"
    assert token.read_text() == "eyJ.token.sig"
    assert token.stat().st_mode & 0o777 == 0o600


def test_a_second_pass_before_the_submit_runs_submits_nothing_more(world: World) -> None:
    world.request(idle=5, max_glideins=20)
    find_work(world.deps, ENTRY, "run-1")
    second = find_work(world.deps, ENTRY, "run-2")
    assert second.submitted == 0
    decision = world.state.entries.get_decision(ENTRY, next(iter(second.reasons)))
    assert decision is not None and "submit 0" in str(decision["explain"])


def test_a_redelivered_submit_order_never_submits_twice(world: World) -> None:
    world.request(idle=4, max_glideins=20)
    find_work(world.deps, ENTRY, "run-1")
    order = SubmitOrder.from_json(world.dispatcher.submits[USER][0])
    first = execute_submit(world.user, order)
    again = execute_submit(world.user, order)
    assert (first.newly_submitted, again.newly_submitted) == (4, 0)
    assert again.status == "already_submitted"
    assert len(world.backend.query()) == 4


def test_a_submit_killed_after_submitting_completes_without_duplicates(world: World) -> None:
    world.request(idle=4, max_glideins=20)
    find_work(world.deps, ENTRY, "run-1")
    order = SubmitOrder.from_json(world.dispatcher.submits[USER][0])
    # The worker died after the backend accepted 3 of the 4 jobs, before marking the ledger.
    world.backend.submit(order.submission({}, 3))
    outcome = execute_submit(world.user, order)
    assert outcome.newly_submitted == 1
    assert len(world.backend.query()) == 4


def test_a_failed_glidein_query_fails_closed(world: World) -> None:
    world.request(idle=5, max_glideins=20)
    world.backend.fail_next(Operation.QUERY, TransientError("schedd unreachable"))
    result = find_work(world.deps, ENTRY, "run-1")
    assert result.status == "failed_closed"
    assert world.dispatcher.submits == {}
    decision = world.state.entries.get_decision(
        ENTRY, next(iter(world.state.entries.decisions(ENTRY)))
    )
    assert decision is not None and decision["reason"] == "query_failed"
    snapshot = world.state.entries.get_snapshot(ENTRY)
    assert snapshot is not None and "schedd unreachable" in (snapshot.error or "")


def test_entry_downtime_submits_nothing_but_still_removes(world: World) -> None:
    world.request(idle=6, max_glideins=20)
    find_work(world.deps, ENTRY, "run-1")
    world.run_user_orders()
    world.downtimes = parse_downtimes(f"1970-01-01T00:00:00 None {ENTRY}\n", "test")
    world.request(idle=0, max_glideins=0)
    ad = world.hub.handle(CMS).query(AdType.GLIDECLIENT)[0].attrs
    ad = {**ad, "ReqRemoveExcess": "ALL"}
    world.hub.handle(CMS).advertise(AdType.GLIDECLIENT, [ad])
    result = find_work(world.deps, ENTRY, "run-2")
    assert result.submitted == 0
    assert result.removed == 5  # remove max_per_cycle of the example entry
    world.run_user_orders()
    assert len(world.backend.query()) == 1


def test_a_spoofed_request_is_rejected_and_changes_nothing(world: World) -> None:
    ad = world.frontend.request(ENTRY, idle=5)
    world.hub.handle("vofrontend_dune@frontend.dune.example.org").advertise(
        AdType.GLIDECLIENT, [ad]
    )
    result = find_work(world.deps, ENTRY, "run-1")
    assert (result.requests, result.rejected, result.submitted) == (0, 1, 0)
    assert world.dispatcher.submits == {}
    [decision] = world.state.entries.decisions(ENTRY).values()
    assert decision["rejected"] == "identity_mismatch"


# ---------------------------------------------------------------------------- stale orders


def test_an_order_older_than_its_lifetime_is_not_submitted(world: World) -> None:
    world.request(idle=4, max_glideins=20)
    find_work(world.deps, ENTRY, "run-1")
    order = SubmitOrder.from_json(world.dispatcher.submits[USER][0])
    world.now += world.user.order_lifetime + 1  # the user worker was down meanwhile
    outcome = execute_submit(world.user, order)
    assert (outcome.status, outcome.newly_submitted) == ("expired", 0)
    assert world.backend.query() == []
    assert world.state.inflight.list(ENTRY) == []
    record = world.state.ledger.get(order.tags.submit_key)
    assert record is not None and record.state is LedgerState.FAILED
    assert record.detail.startswith("expired: queued 1801 s ago")
    assert execute_submit(world.user, order).status == "previously_failed"


def test_an_order_run_within_its_lifetime_is_submitted(world: World) -> None:
    world.request(idle=4, max_glideins=20)
    find_work(world.deps, ENTRY, "run-1")
    world.now += world.user.order_lifetime
    world.run_user_orders()
    assert len(world.backend.query()) == 4


def test_find_work_counts_a_queued_submit_until_no_worker_can_run_it(world: World) -> None:
    world.request(idle=5, max_glideins=20)
    find_work(world.deps, ENTRY, "run-1")
    # Past its lifetime, a worker that started the order just before may still be submitting.
    world.now += order_lifetime(world.config.factory.loop_delay) + SUBMIT_LOCK_SECONDS
    assert find_work(world.deps, ENTRY, "run-2").submitted == 0
    world.now += 1
    assert find_work(world.deps, ENTRY, "run-3").submitted == 5
    [record] = world.state.inflight.list(ENTRY)
    assert record.queued_at == world.now


# ---------------------------------------------------------------------------- broker failures


def test_a_submit_the_broker_refuses_is_not_counted_and_its_decision_says_why(
    world: World,
) -> None:
    world.request(idle=5, max_glideins=20)
    world.dispatcher.fail_next(TransientError("broker unreachable"))
    result = find_work(world.deps, ENTRY, "run-1")
    assert (result.status, result.submitted) == ("done", 0)
    assert world.dispatcher.submits == {}
    assert world.state.inflight.list(ENTRY) == []
    [(work_key, decision)] = world.state.entries.decisions(ENTRY).items()
    assert decision["blocked"] == "broker unreachable"
    assert str(decision["explain"]).endswith("; not sent: broker unreachable")
    assert result.reasons[work_key] == decision["submit"]["reason"]
    again = find_work(world.deps, ENTRY, "run-2")
    assert again.submitted == 5, "nothing is waiting for the order that was never sent"


def test_an_order_the_broker_may_have_taken_after_all_is_never_submitted(world: World) -> None:
    world.request(idle=5, max_glideins=20)
    world.dispatcher.fail_next(TransientError("timed out waiting for the broker"))
    find_work(world.deps, ENTRY, "run-1")
    [work_key] = world.state.entries.decisions(ENTRY)
    key = submit_key_for("run-1", work_key)
    record = world.state.ledger.get(key)
    assert record is not None and record.state is LedgerState.FAILED
    assert record.detail == "not sent: timed out waiting for the broker"


def test_an_unknown_job_action_is_refused_by_the_dispatcher(world: World) -> None:
    with pytest.raises(PermanentError, match="unknown job action 'explode'"):
        world.dispatcher.send_job_action(USER, {"entry": ENTRY, "action": "explode"})
    assert world.dispatcher.job_actions == {}


# ---------------------------------------------------------------------------- sanitize counts


def test_only_the_glideins_whose_orders_are_sent_count_as_removed(world: World) -> None:
    orphans = _queue(world, 2, frontend="gone_frontend:main")  # no local user serves it
    owned = _queue(world, 1, frontend="cms_frontend:production")
    for job_id in (*orphans, *owned):
        world.backend.hold(job_id, code=1)
    result = find_work(world.deps, ENTRY, "run-1")
    assert result.removed == 1
    [order] = world.dispatcher.job_actions[USER]
    assert order["job_ids"] == owned


def _queue(world: World, count: int, frontend: str) -> list[str]:
    tags = GlideinTags(
        "demo_factory", "gfactory_instance", ENTRY, "x.main", "main", "c", frontend, USER, "k"
    )
    return world.backend.submit(Submission(tags, count, ()))
