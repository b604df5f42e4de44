"""The simulated CE/batch model: phases, capacity, holds, failures, and rebuilding from changes."""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gwms_tasks.core.model import Glidein, StatusCounts
from gwms_tasks.core.simulation import (
    DUE,
    PHASE,
    ClusterInfo,
    Exponential,
    Fixed,
    Phase,
    SiteModel,
    SiteParameters,
    SiteState,
    Uniform,
    parse_distribution,
)
from gwms_tasks.core.status import GlideinStatus, JobStatus
from gwms_tasks.errors import ConfigError, PermanentError
from gwms_tasks.ports import GlideinTags

TAGS = GlideinTags(
    "fact", "gfactory_instance", "ce1", "fe.main", "sc1", "cred1", "fe:sc1", "u", "k1"
)
FIXED_SITE = SiteParameters(
    slots=2, submit_delay=Fixed(10), queue_time=Fixed(20), run_time=Fixed(100)
)


def model(
    params: SiteParameters = FIXED_SITE, seed: int = 1, track_changes: bool = False
) -> SiteModel:
    return SiteModel(params, "ce1", random.Random(seed), track_changes=track_changes)


def statuses(site: SiteModel) -> dict[str, GlideinStatus]:
    return {g.job_id: g.status for g in site.glideins()}


# -- distributions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("60", Fixed(60)),
        ("fixed:2.5", Fixed(2.5)),
        ("uniform:60:600", Uniform(60, 600)),
        ("exp:300", Exponential(300)),
    ],
)
def test_distributions_are_parsed_from_short_text(text: str, expected: object) -> None:
    assert parse_distribution(text) == expected


@pytest.mark.parametrize(
    "text", ["", "x", "uniform:1", "exp:0", "fixed:-1", "uniform:9:1", "gauss:1:2", "exp:a"]
)
def test_bad_distributions_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_distribution(text)


@given(st.floats(0, 1e6), st.floats(0, 1e6), st.integers(0, 2**32))
def test_uniform_samples_stay_within_bounds(a: float, b: float, seed: int) -> None:
    low, high = sorted((a, b))
    assert low <= Uniform(low, high).sample(random.Random(seed)) <= high


def test_exponential_samples_have_the_given_mean() -> None:
    rng = random.Random(3)
    mean = statistics.fmean(Exponential(300).sample(rng) for _ in range(20_000))
    assert 285 < mean < 315


@pytest.mark.parametrize("changes", [{"slots": -1}, {"hold_rate": 1.5}, {"failure_rate": -0.1}])
def test_impossible_site_parameters_are_config_errors(changes: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        SiteParameters(**changes)  # type: ignore[arg-type]


# -- the life of a glidein ---------------------------------------------------------------------


def test_glideins_wait_then_pend_then_run_then_leave() -> None:
    site = model()
    assert site.submit(TAGS, 3, now=0.0) == ["1.0", "1.1", "1.2"]
    assert set(statuses(site).values()) == {GlideinStatus.WAIT}
    assert site.advance(9.999) == 0
    site.advance(10.0)
    assert set(statuses(site).values()) == {GlideinStatus.PENDING}
    site.advance(30.0)
    assert statuses(site) == {
        "1.0": GlideinStatus.RUNNING,
        "1.1": GlideinStatus.RUNNING,
        "1.2": GlideinStatus.PENDING,
    }
    site.advance(130.0)
    running = {g.job_id: g.entered_current_status for g in site.glideins()}
    assert running == {"1.2": 130.0}
    site.advance(230.0)
    assert site.glideins() == []
    assert site.counters == {
        "submitted": 3,
        "held": 0,
        "started": 3,
        "completed": 3,
        "failed": 0,
        "removed": 0,
    }


def test_glideins_report_htcondor_ce_grid_statuses() -> None:
    site = model()
    site.submit(TAGS, 1, now=0.0)
    site.advance(10.0)
    pending = site.glideins()[0]
    assert (pending.job_status, pending.grid_job_status) == (JobStatus.IDLE, "IDLE")
    site.advance(30.0)
    running = site.glideins()[0]
    assert (running.job_status, running.grid_job_status) == (JobStatus.RUNNING, "RUNNING")


def test_glideins_carry_their_submission_tags() -> None:
    site = model()
    site.submit(TAGS, 1, now=0.0)
    glidein = site.glideins()[0]
    assert (glidein.entry, glidein.client, glidein.security_class) == ("ce1", "fe.main", "sc1")
    assert (glidein.credential_id, glidein.frontend, glidein.submit_key) == (
        "cred1",
        "fe:sc1",
        "k1",
    )


def test_glideins_that_became_ready_first_start_first() -> None:
    params = SiteParameters(slots=1, queue_time=Uniform(0, 1000), run_time=Fixed(5000))
    site = model(params, seed=11, track_changes=True)
    site.submit(TAGS, 20, now=0.0)
    site.advance(1000.0)  # every glidein is ready by now, one of them runs
    records = site.take_changes().jobs
    ready = sorted((r[DUE], n) for n, r in records.items() if r and r[PHASE] == Phase.READY)
    (running,) = [g.job_id for g in site.glideins() if g.status is GlideinStatus.RUNNING]
    site.remove([running], now=1000.0)
    (next_up,) = [g.job_id for g in site.glideins() if g.status is GlideinStatus.RUNNING]
    assert next_up == f"1.{ready[0][1]}"


def test_a_site_never_runs_more_glideins_than_its_slots() -> None:
    params = SiteParameters(slots=7, queue_time=Exponential(50), run_time=Exponential(200))
    site = model(params, seed=5)
    for step in range(200):
        site.submit(TAGS, 3, now=step * 10.0)
        site.advance(step * 10.0)
        running = sum(g.status is GlideinStatus.RUNNING for g in site.glideins())
        assert running == site.busy_slots <= 7


def test_every_glidein_is_held_at_a_site_that_refuses_all() -> None:
    params = SiteParameters(slots=5, submit_delay=Fixed(10), hold_rate=1.0, hold_reason_code=30)
    site = model(params)
    site.submit(TAGS, 2, now=0.0)
    site.advance(10.0)
    held = site.glideins()
    assert {g.status for g in held} == {GlideinStatus.HELD}
    assert {(g.hold_reason_code, g.num_system_holds, g.entered_current_status) for g in held} == {
        (30, 1, 10.0)
    }


def test_a_released_glidein_waits_again_and_keeps_its_hold_count() -> None:
    params = SiteParameters(slots=5, submit_delay=Fixed(10), hold_rate=1.0)
    site = model(params)
    site.submit(TAGS, 1, now=0.0)
    site.advance(10.0)
    assert site.release(["1.0"], now=50.0) == 1
    glidein = site.glideins()[0]
    assert (glidein.status, glidein.entered_current_status) == (GlideinStatus.WAIT, 50.0)
    assert (glidein.hold_reason_code, glidein.num_system_holds) == (None, 1)
    site.advance(60.0)
    assert site.glideins()[0].num_system_holds == 2


def test_release_leaves_glideins_that_are_not_held_alone() -> None:
    site = model()
    site.submit(TAGS, 1, now=0.0)
    assert site.release(["1.0"], now=5.0) == 0
    assert site.glideins()[0].entered_current_status == 0.0


def test_failing_glideins_run_only_their_failure_time() -> None:
    params = SiteParameters(slots=5, failure_rate=1.0, failure_time=Fixed(60), run_time=Fixed(9999))
    site = model(params)
    site.submit(TAGS, 3, now=0.0)
    site.advance(0.0)
    site.advance(60.0)
    assert site.glideins() == []
    assert (site.counters["failed"], site.counters["completed"]) == (3, 0)


def test_removing_a_running_glidein_lets_a_waiting_one_start_at_once() -> None:
    site = model(SiteParameters(slots=1, run_time=Fixed(1000)))
    site.submit(TAGS, 2, now=0.0)
    site.advance(0.0)
    assert site.remove(["1.0"], now=40.0) == 1
    (glidein,) = site.glideins()
    assert (glidein.job_id, glidein.status, glidein.entered_current_status) == (
        "1.1",
        GlideinStatus.RUNNING,
        40.0,
    )
    assert site.counters["removed"] == 1


def test_holding_a_running_glidein_frees_its_slot() -> None:
    site = model(SiteParameters(slots=1, run_time=Fixed(1000)))
    site.submit(TAGS, 2, now=0.0)
    site.advance(0.0)
    assert site.hold(["1.0"], now=5.0) == 1
    assert statuses(site) == {"1.0": GlideinStatus.HELD, "1.1": GlideinStatus.RUNNING}


def test_unknown_job_ids_are_ignored() -> None:
    site = model()
    site.submit(TAGS, 1, now=0.0)
    assert site.remove(["9.0", "1.5"], now=1.0) == 0
    assert len(site.glideins()) == 1


def test_a_malformed_job_id_is_refused_before_anything_changes() -> None:
    site = model()
    site.submit(TAGS, 2, now=0.0)
    with pytest.raises(PermanentError, match=r"cluster\.proc"):
        site.remove(["1.0", "1-1"], now=1.0)
    assert len(site.glideins()) == 2


def test_job_ids_are_unique_across_submits_even_after_clusters_leave() -> None:
    site = model(SiteParameters(slots=10, run_time=Fixed(1)))
    first = site.submit(TAGS, 2, now=0.0)
    site.advance(10.0)
    second = site.submit(TAGS, 2, now=10.0)
    assert first == ["1.0", "1.1"]
    assert second == ["2.0", "2.1"]


def test_the_same_seed_gives_the_same_site_history() -> None:
    params = SiteParameters(
        slots=3, queue_time=Exponential(30), run_time=Uniform(10, 100), hold_rate=0.2
    )

    def history(seed: int) -> list[list[Glidein]]:
        site = model(params, seed=seed)
        site.submit(TAGS, 10, now=0.0)
        snapshots = []
        for step in range(1, 6):
            site.advance(50.0 * step)
            snapshots.append(site.glideins())
        return snapshots

    assert history(4) == history(4)
    assert history(4) != history(5)


def test_an_advance_with_nothing_due_changes_nothing() -> None:
    site = model()
    site.submit(TAGS, 4, now=0.0)
    before = site.glideins()
    assert site.advance(5.0) == 0
    assert site.glideins() == before


def test_counts_by_status_follow_the_model() -> None:
    site = model(SiteParameters(slots=1, submit_delay=Fixed(10), run_time=Fixed(100)))
    site.submit(TAGS, 3, now=0.0)
    site.advance(10.0)
    counts = StatusCounts.of(site.glideins())
    assert (counts.running, counts.pending, counts.idle) == (1, 2, 2)


# -- rebuilding from recorded changes (what the Redis store relies on) ----------------------------

Operation = Callable[[SiteModel, float], object]
OPERATIONS: list[Operation] = [
    lambda site, now: site.submit(TAGS, 5, now),
    lambda site, now: site.advance(now),
    lambda site, now: site.remove([g.job_id for g in site.glideins()[:2]], now),
    lambda site, now: site.hold([g.job_id for g in site.glideins()[-1:]], now),
    lambda site, now: site.release([g.job_id for g in site.glideins()], now),
]


def _apply(store: dict[str, dict[int, object]], changes: SiteState) -> None:
    for part, updates in (("jobs", changes.jobs), ("clusters", changes.clusters)):
        for key, value in updates.items():
            if value is None:
                store[part].pop(key, None)
            else:
                store[part][key] = value


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(OPERATIONS) - 1), st.floats(0, 50)), max_size=40))
def test_a_model_rebuilt_from_its_recorded_changes_is_the_same(
    steps: list[tuple[int, float]],
) -> None:
    params = SiteParameters(
        slots=3,
        submit_delay=Exponential(5),
        queue_time=Exponential(10),
        run_time=Exponential(40),
        hold_rate=0.2,
        failure_rate=0.1,
    )
    live = model(params, seed=9, track_changes=True)
    store: dict[str, dict[int, object]] = {"jobs": {}, "clusters": {}}
    now = 0.0
    for operation, delay in steps:
        now += delay
        OPERATIONS[operation](live, now)
        changes = live.take_changes()
        _apply(store, changes)
        state = SiteState(
            jobs={n: r for n, r in store["jobs"].items() if isinstance(r, tuple)},
            clusters={c: i for c, i in store["clusters"].items() if isinstance(i, ClusterInfo)},
            next_num=changes.next_num,
            next_cluster=changes.next_cluster,
            counters=changes.counters,
        )
        rebuilt = SiteModel(params, "ce1", random.Random(0), state=state)
        assert sorted(rebuilt.glideins(), key=_by_id) == sorted(live.glideins(), key=_by_id)
        assert rebuilt.counters == live.counters
        assert rebuilt.busy_slots == live.busy_slots


def _by_id(glidein: Glidein) -> tuple[int, int]:
    cluster, proc = glidein.job_id.split(".")
    return int(cluster), int(proc)


def test_a_model_without_change_tracking_records_nothing() -> None:
    site = model()
    site.submit(TAGS, 3, now=0.0)
    changes = site.take_changes()
    assert (changes.jobs, changes.clusters) == ({}, {})
