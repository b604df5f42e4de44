"""Properties of a whole entry cycle over random queues, demands and limits (hypothesis)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from gwms_tasks.core.decisions import Demand, DownReason, RemoveExcess
from gwms_tasks.core.limits import EntryLimits, GlideinLimits, HeldPolicy, StaleAges
from gwms_tasks.core.model import Glidein, StatusCounts
from gwms_tasks.core.plan import EntryPlan, plan_entry
from gwms_tasks.core.removal import decide_removal
from gwms_tasks.core.sanitize import JobAction, SanitizeReason, decide_sanitize
from gwms_tasks.core.status import JobStatus

NOW = 1_700_000_000.0
FRONTENDS = ("fe1", "fe2")
GROUPS = ("a", "b")
CLASSES = ("sc1", "sc2")
CREDENTIALS = ("c1", "c2")
# Idle and running glideins are the common case; every status still shows up.
job_statuses = st.sampled_from([JobStatus.IDLE] * 3 + [JobStatus.RUNNING] * 2 + list(JobStatus))
GRID_STATUSES = (None, "PENDING", "STAGE_IN", "RUNNING", "STAGE_OUT", "SOMETHING_ODD")


@dataclass(frozen=True)
class Cycle:
    """One random cycle: its inputs and the plan made from them."""

    glideins: list[Glidein]
    demands: list[Demand]
    limits: EntryLimits
    held_policy: HeldPolicy
    stale_ages: StaleAges
    entry_down: DownReason | None
    plan: EntryPlan


@st.composite
def glideins(draw: st.DrawFn) -> list[Glidein]:
    made = []
    for number in range(draw(st.integers(0, 40))):
        frontend, group = draw(st.sampled_from(FRONTENDS)), draw(st.sampled_from(GROUPS))
        security_class = draw(st.sampled_from(CLASSES))
        made.append(
            Glidein(
                job_id=f"{number}.0",
                entry="ce1",
                client=f"{frontend}.{group}",
                security_class=security_class,
                credential_id=draw(st.sampled_from(CREDENTIALS)),
                frontend=f"{frontend}:{security_class}",
                job_status=draw(job_statuses),
                grid_job_status=draw(st.sampled_from(GRID_STATUSES)),
                entered_current_status=NOW - draw(st.floats(0, 4e6)),
                hold_reason_code=draw(st.sampled_from((None, 12, 30, 99))),
                hold_reason_subcode=draw(st.sampled_from((None, 1, 2))),
                num_system_holds=draw(st.integers(0, 25)),
            )
        )
    return made


# Small values make excess (and so removals) common; large ones make limits bind.
small_or_large = st.integers(0, 3) | st.integers(0, 40)
rarely_down = st.integers(0, 9).flatmap(
    lambda roll: st.sampled_from(list(DownReason)) if roll == 7 else st.none()
)


@st.composite
def demands(draw: st.DrawFn) -> list[Demand]:
    combos = [(f, g, s, c) for f in FRONTENDS for g in GROUPS for s in CLASSES for c in CREDENTIALS]
    chosen = draw(st.lists(st.sampled_from(combos), unique=True, max_size=6))
    return [
        Demand(
            work_key=f"{credential}_{security_class}_ce1@g@f@{frontend}.{group}",
            client=f"{frontend}.{group}",
            security_class=security_class,
            credential_id=credential,
            frontend=frontend,
            req_idle=draw(small_or_large),
            req_max=draw(small_or_large),
            remove_excess=draw(st.sampled_from(list(RemoveExcess))),
            remove_margin=draw(st.integers(0, 3)),
            down=draw(rarely_down),
        )
        for frontend, group, security_class, credential in chosen
    ]


glidein_limits = st.builds(
    GlideinLimits,
    max_idle=st.integers(0, 60),
    max_held=st.integers(0, 40),
    max_glideins=st.integers(0, 80),
)
entry_limits = st.builds(
    EntryLimits,
    per_entry=glidein_limits,
    default_per_frontend=glidein_limits,
    per_frontend=st.dictionaries(
        st.sampled_from([f"{f}:{s}" for f in FRONTENDS for s in CLASSES]), glidein_limits
    ),
    max_submit_per_cycle=st.integers(0, 20),
    max_remove_per_cycle=st.integers(0, 6),
    max_release_per_cycle=st.integers(0, 5),
)
held_policies = st.builds(
    HeldPolicy,
    recoverable=st.sampled_from([{}, {12: frozenset()}, {12: frozenset(), 30: frozenset({2})}]),
    max_releases=st.integers(0, 12),
    release_backoff=st.floats(0, 600),
    forcex_after=st.integers(0, 25),
)
stale_ages = st.builds(StaleAges, idle=st.floats(0, 2e6), running=st.floats(0, 4e6))


@st.composite
def cycles(draw: st.DrawFn, down: st.SearchStrategy[DownReason | None] | None = None) -> Cycle:
    queue, wanted = draw(glideins()), draw(demands())
    limits, policy, ages = draw(entry_limits), draw(held_policies), draw(stale_ages)
    entry_down = draw(rarely_down if down is None else down)
    made = plan_entry(queue, wanted, limits, policy, ages, entry_down, NOW)
    return Cycle(queue, wanted, limits, policy, ages, entry_down, made)


def counts_where(queue: list[Glidein], **tags: str) -> StatusCounts:
    return StatusCounts.of(g for g in queue if all(getattr(g, k) == v for k, v in tags.items()))


PROPERTY = settings(max_examples=100, deadline=None)


@PROPERTY
@given(cycles())
def test_no_submission_pushes_the_entry_or_a_frontend_over_a_limit(cycle: Cycle) -> None:
    per_frontend = Counter[str]()
    for item in cycle.plan.demands:
        per_frontend[item.demand.frontend_key] += item.submit.count
    entry, bounds = StatusCounts.of(cycle.glideins), cycle.limits.per_entry
    if cycle.plan.submitted > 0:
        assert entry.idle + cycle.plan.submitted <= bounds.max_idle
        assert entry.idle + entry.running + cycle.plan.submitted <= bounds.max_glideins
        assert entry.held < bounds.max_held
    for key, submitted in per_frontend.items():
        if submitted == 0:
            continue
        counts, fe_bounds = (
            counts_where(cycle.glideins, frontend=key),
            cycle.limits.for_frontend(key),
        )
        assert counts.idle + submitted <= fe_bounds.max_idle
        assert counts.idle + counts.running + submitted <= fe_bounds.max_glideins
        assert counts.held < fe_bounds.max_held


@PROPERTY
@given(cycles())
def test_each_demand_gets_no_more_than_it_asked_nor_the_per_cycle_maximum(cycle: Cycle) -> None:
    for item in cycle.plan.demands:
        demand, count = item.demand, item.submit.count
        own = counts_where(
            cycle.glideins,
            client=demand.client,
            security_class=demand.security_class,
            credential_id=demand.credential_id,
        )
        assert 0 <= count <= cycle.limits.max_submit_per_cycle
        if count > 0:
            assert demand.down is None and cycle.entry_down is None
            assert own.idle + count <= demand.req_idle
            assert own.idle + own.running + count <= demand.req_max
        if demand.req_idle == 0:
            assert count == 0


@PROPERTY
@given(cycles(down=st.sampled_from(list(DownReason))))
def test_downtime_submits_nothing_but_removal_and_sweep_still_run(cycle: Cycle) -> None:
    assert cycle.plan.submitted == 0
    removed: set[str] = set()
    for item in cycle.plan.demands:
        demand = item.demand
        assert item.submit.adjusted_idle == 0
        own = [g for g in cycle.glideins if demand.owns(g)]
        class_counts = counts_where(cycle.glideins, frontend=demand.frontend_key)
        assert item.removal == decide_removal(demand, own, class_counts, cycle.limits)
        removed.update(item.removal.job_ids)
    assert cycle.plan.sanitize == decide_sanitize(
        cycle.glideins, cycle.stale_ages, cycle.held_policy, cycle.limits, NOW, frozenset(removed)
    )


@PROPERTY
@given(cycles())
def test_removal_is_capped_and_touches_only_the_requests_own_glideins(cycle: Cycle) -> None:
    by_id = {g.job_id: g for g in cycle.glideins}
    for item in cycle.plan.demands:
        assert (item.removal is None) == (item.submit.count > 0)
        if item.removal is None:
            continue
        job_ids = item.removal.job_ids
        assert len(job_ids) <= cycle.limits.max_remove_per_cycle
        assert len(set(job_ids)) == len(job_ids)
        assert all(item.demand.owns(by_id[job_id]) for job_id in job_ids)


@PROPERTY
@given(cycles())
def test_sweep_leaves_removed_glideins_alone_and_keeps_its_caps(cycle: Cycle) -> None:
    sweep = cycle.plan.sanitize
    acted = [action.job_id for action in sweep.actions]
    assert len(set(acted)) == len(acted)
    removed = [j for item in cycle.plan.demands if item.removal for j in item.removal.job_ids]
    assert not set(acted) & set(removed)
    assert len(sweep.job_ids(JobAction.RELEASE)) <= cycle.limits.max_release_per_cycle
    per_reason = Counter(action.reason for action in sweep.actions)
    shared = (
        per_reason[SanitizeReason.HELD_UNRECOVERABLE] + per_reason[SanitizeReason.HELD_TOO_OFTEN]
    )
    assert shared <= cycle.limits.max_remove_per_cycle
    for reason in (
        SanitizeReason.STALE_IDLE,
        SanitizeReason.STALE_RUNNING,
        SanitizeReason.HELD_FORCEX,
    ):
        assert per_reason[reason] <= cycle.limits.max_remove_per_cycle


@PROPERTY
@given(cycles())
def test_counts_never_go_negative_and_the_plan_serialises(cycle: Cycle) -> None:
    final = cycle.plan.final_entry_counts
    assert min(final.to_dict().values()) >= 0
    assert final.wait == StatusCounts.of(cycle.glideins).wait + cycle.plan.submitted
    data = json.loads(json.dumps(cycle.plan.to_dict()))
    assert data["submitted"] == cycle.plan.submitted


@PROPERTY
@given(cycles())
def test_the_counts_at_cycle_start_are_those_of_the_queue(cycle: Cycle) -> None:
    assert cycle.plan.entry_counts == StatusCounts.of(cycle.glideins)
    for item in cycle.plan.demands:
        owned = [g for g in cycle.glideins if item.demand.owns(g)]
        assert item.counts == StatusCounts.of(owned)
