"""The request arithmetic: curbs, ramp-up, the group budget, unclaimed glideins and removal."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gwms_tasks.frontend.core_config import GroupLimits, RemoveExcessConfig, RemoveMode
from gwms_tasks.frontend.core_plan import (
    EntryDemand,
    EntryRequest,
    GlideinCounts,
    IdleReason,
    MaxReason,
    RemoveReason,
    plan_group,
    share,
)

LIMITS = GroupLimits(
    max_idle_per_entry=50,
    max_glideins_per_entry=80,
    max_glideins_total=200,
    max_new_idle_per_cycle=20,
)
REMOVAL = RemoveExcessConfig(mode=RemoveMode.IDLE, after_cycles=3, margin=1)


def one(entry: EntryDemand, running_jobs: int = 0, *, job_source_ok: bool = True) -> EntryRequest:
    [request] = plan_group(
        [entry], running_jobs, LIMITS, REMOVAL, job_source_ok=job_source_ok
    ).requests
    return request


@pytest.mark.parametrize(
    ("glideins", "matched", "running_jobs", "idle", "reason", "max_glideins"),
    [
        # demand below every curb: ask for it, the factory adds what is not idle yet
        (GlideinCounts(), 7, 0, 7, IdleReason.DEMAND, 7),
        (GlideinCounts(idle=5), 7, 0, 7, IdleReason.DEMAND, 7),
        # no job: nothing asked, nothing new allowed
        (GlideinCounts(idle=2, running=3), 0, 3, 0, IdleReason.NO_DEMAND, 5),
        # per-entry idle curb
        (GlideinCounts(idle=45), 70, 0, 50, IdleReason.MAX_IDLE_PER_ENTRY, 50),
        # ramp-up: 20 new on top of the idle ones
        (GlideinCounts(idle=4), 40, 0, 24, IdleReason.RAMP_UP, 24),
        # per-entry glidein cap: 80 minus 70 running leaves room for 10 idle
        (GlideinCounts(idle=0, running=70), 30, 70, 10, IdleReason.MAX_GLIDEINS_PER_ENTRY, 80),
        # 6 running glideins run only 2 jobs: the 4 others will take waiting jobs first
        (GlideinCounts(running=6), 10, 2, 6, IdleReason.DEMAND, 12),
        (GlideinCounts(running=6), 3, 2, 0, IdleReason.NO_DEMAND, 6),
        # jobs running elsewhere (more jobs than glideins) leave no glidein unclaimed
        (GlideinCounts(running=2), 5, 9, 5, IdleReason.DEMAND, 7),
    ],
)
def test_idle_request_and_its_reason(
    glideins: GlideinCounts,
    matched: int,
    running_jobs: int,
    idle: int,
    reason: IdleReason,
    max_glideins: int,
) -> None:
    request = one(EntryDemand("e@g@f", glideins, matched), running_jobs)

    assert (request.idle, request.idle_reason, request.max_glideins) == (idle, reason, max_glideins)


def test_group_budget_is_shared_by_what_the_entries_want() -> None:
    limits = LIMITS.model_copy(update={"max_glideins_total": 50})
    entries = [
        EntryDemand("a@g@f", GlideinCounts(running=20), 40),
        EntryDemand("b@g@f", GlideinCounts(running=10), 40),
        EntryDemand("c@g@f", GlideinCounts(), 5),
    ]

    plan = plan_group(entries, 30, limits, REMOVAL)

    assert plan.budget == 20
    by_key = {r.key: r for r in plan.requests}
    assert [by_key[k].new_glideins for k in ("a@g@f", "b@g@f", "c@g@f")] == [9, 9, 2]
    assert {r.idle_reason for r in plan.requests} == {IdleReason.MAX_GLIDEINS_TOTAL}
    assert [by_key[k].max_glideins for k in ("a@g@f", "b@g@f", "c@g@f")] == [29, 19, 2]


def test_group_over_its_budget_adds_nothing_anywhere() -> None:
    limits = LIMITS.model_copy(update={"max_glideins_total": 10})
    entries = [EntryDemand("a@g@f", GlideinCounts(idle=4, running=8), 30)]

    [request] = plan_group(entries, 8, limits, REMOVAL).requests

    assert (request.idle, request.new_glideins, request.max_glideins) == (4, 0, 12)
    assert request.idle_reason == IdleReason.MAX_GLIDEINS_TOTAL


def test_entry_in_downtime_asks_for_nothing_but_keeps_its_glideins() -> None:
    request = one(EntryDemand("e@g@f", GlideinCounts(idle=2, running=3), 9, in_downtime=True), 3)

    assert (request.idle, request.idle_reason, request.max_glideins) == (
        0,
        IdleReason.ENTRY_IN_DOWNTIME,
        5,
    )


def test_failed_job_source_asks_for_nothing_and_removes_nothing() -> None:
    entry = EntryDemand("e@g@f", GlideinCounts(idle=2), 9, zero_demand_cycles=10)

    request = one(entry, job_source_ok=False)

    assert (request.idle, request.remove_excess) == (0, RemoveMode.NO)
    assert (request.idle_reason, request.remove_reason) == (
        IdleReason.JOB_SOURCE_FAILED,
        RemoveReason.JOB_SOURCE_FAILED,
    )
    assert request.zero_demand_cycles == 10


@pytest.mark.parametrize(
    ("matched", "before", "mode", "reason", "after"),
    [
        (3, 7, RemoveMode.NO, RemoveReason.JOBS_WAITING, 0),
        (0, 0, RemoveMode.NO, RemoveReason.WAITING_CYCLES, 1),
        (0, 1, RemoveMode.NO, RemoveReason.WAITING_CYCLES, 2),
        (0, 2, RemoveMode.IDLE, RemoveReason.DEMAND_VANISHED, 3),
        (0, 9, RemoveMode.IDLE, RemoveReason.DEMAND_VANISHED, 10),
    ],
)
def test_removal_waits_for_the_configured_cycles_without_jobs(
    matched: int, before: int, mode: RemoveMode, reason: RemoveReason, after: int
) -> None:
    request = one(EntryDemand("e@g@f", GlideinCounts(idle=4), matched, zero_demand_cycles=before))

    assert (request.remove_excess, request.remove_reason, request.zero_demand_cycles) == (
        mode,
        reason,
        after,
    )
    assert request.remove_margin == 1


def test_removal_disabled_never_asks() -> None:
    removal = RemoveExcessConfig(mode=RemoveMode.NO, after_cycles=1)
    entry = EntryDemand("e@g@f", GlideinCounts(idle=4), 0, zero_demand_cycles=5)

    [request] = plan_group([entry], 0, LIMITS, removal).requests

    assert (request.remove_excess, request.remove_reason) == (RemoveMode.NO, RemoveReason.DISABLED)


def test_remove_all_lowers_the_maximum_to_the_glideins_running_jobs() -> None:
    removal = RemoveExcessConfig(mode=RemoveMode.ALL, after_cycles=1)
    entry = EntryDemand("e@g@f", GlideinCounts(idle=3, running=10), 0, zero_demand_cycles=4)

    [request] = plan_group([entry], 6, LIMITS, removal).requests

    assert (request.remove_excess, request.max_glideins, request.max_reason) == (
        RemoveMode.ALL,
        6,
        MaxReason.BUSY_ONLY,
    )


@pytest.mark.parametrize(
    ("total", "weights", "expected"),
    [
        (10, {"a": 10, "b": 10}, {"a": 5, "b": 5}),
        (3, {"a": 2, "b": 2}, {"a": 2, "b": 1}),
        (5, {"a": 6, "b": 3, "c": 1}, {"a": 3, "b": 2, "c": 0}),
        (99, {"a": 2, "b": 3}, {"a": 2, "b": 3}),
        (4, {"a": 0, "b": 0}, {"a": 0, "b": 0}),
        (-1, {"a": 4}, {"a": 0}),
    ],
)
def test_share_is_proportional_with_largest_remainders(
    total: int, weights: dict[str, int], expected: dict[str, int]
) -> None:
    assert share(total, weights) == expected


counts = st.builds(
    GlideinCounts,
    idle=st.integers(0, 300),
    running=st.integers(0, 300),
    held=st.integers(0, 10),
)
demands = st.lists(
    st.builds(
        EntryDemand,
        key=st.sampled_from([f"e{i}@g@f" for i in range(8)]),
        glideins=counts,
        matched=st.integers(0, 500),
        in_downtime=st.booleans(),
        zero_demand_cycles=st.integers(0, 5),
    ),
    max_size=6,
    unique_by=lambda e: e.key,
)
limits = st.builds(
    GroupLimits,
    max_idle_per_entry=st.integers(0, 200),
    max_glideins_per_entry=st.integers(0, 600),
    max_glideins_total=st.integers(0, 1500),
    max_new_idle_per_cycle=st.integers(1, 50),
)


@given(
    entries=demands,
    running_jobs=st.integers(0, 1000),
    limits=limits,
    ok=st.booleans(),
    mode=st.sampled_from(RemoveMode),
)
def test_requests_never_pass_a_curb_or_the_group_budget(
    entries: list[EntryDemand], running_jobs: int, limits: GroupLimits, ok: bool, mode: RemoveMode
) -> None:
    removal = RemoveExcessConfig(mode=mode, after_cycles=2)

    plan = plan_group(entries, running_jobs, limits, removal, job_source_ok=ok)

    assert sum(r.new_glideins for r in plan.requests) <= plan.budget
    for request, entry in zip(plan.requests, entries, strict=True):
        assert request.new_glideins == max(0, request.idle - entry.glideins.idle)
        assert request.new_glideins <= limits.max_new_idle_per_cycle
        assert request.max_glideins <= max(limits.max_glideins_per_entry, 0)
        if request.new_glideins:
            assert request.idle <= limits.max_idle_per_entry
            assert request.idle <= request.wanted
            assert request.max_glideins >= entry.glideins.total + request.new_glideins or (
                request.max_reason == MaxReason.MAX_GLIDEINS_PER_ENTRY
            )
        if not ok or entry.in_downtime or entry.matched == 0:
            assert request.idle == 0


@given(
    total=st.integers(-5, 1000), weights=st.dictionaries(st.text(min_size=1), st.integers(0, 100))
)
def test_share_gives_out_everything_it_can_and_no_more_than_a_weight(
    total: int, weights: dict[str, int]
) -> None:
    parts = share(total, weights)

    assert sum(parts.values()) == max(0, min(total, sum(weights.values())))
    assert all(0 <= parts[k] <= weights[k] for k in weights)
