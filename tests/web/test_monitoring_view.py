"""The monitoring read model on the in-memory twins, fed by the real services."""

from __future__ import annotations

import pytest

from gwms_tasks.adapters.memory_backend import MemoryGridBackend, Operation
from gwms_tasks.core.ads import AdType, FactoryClientAd
from gwms_tasks.core.downtimes import parse_downtimes
from gwms_tasks.core.glidein_log import GlideinResult
from gwms_tasks.errors import TransientError
from gwms_tasks.services.aggregate import FACTORY_SERIES, aggregate
from gwms_tasks.services.find_work import find_work
from gwms_tasks.services.monitor import monitor_entry
from gwms_tasks.services.monitoring_decisions import LIVE_DECISION_LOOPS, decision_view, is_current
from gwms_tasks.services.monitoring_frontend import UnknownFrontend, frontend_view
from gwms_tasks.services.monitoring_models import EntrySummary, GlideinCounts
from gwms_tasks.services.monitoring_view import (
    STALE_LOOPS,
    UnknownEntry,
    entry_detail,
    entry_series,
    failed_submits,
    flag_texts,
    glidein_list,
    overview,
)
from gwms_tasks.services.status_report import factory_status
from tests.web.world import (
    CLIENT,
    ENTRY,
    FACTORY_WRITER,
    FRONTEND,
    FRONTEND_KEY,
    IDENTITY,
    START,
    VALIDATION,
    FactoryWorld,
)

LOOP = 60.0


def running_world(world: FactoryWorld, idle: int = 5, cycles: int = 3) -> FactoryWorld:
    world.request(idle)
    for _ in range(cycles):
        world.cycle()
    return world


def summary_of(world: FactoryWorld, entry: str = ENTRY) -> EntrySummary:
    return next(e for e in overview(world.sources()).entries if e.name == entry)


# --- overview -------------------------------------------------------------------------------


def test_overview_counts_are_those_of_the_last_glidein_snapshot(memory_world: FactoryWorld) -> None:
    world = running_world(memory_world)
    snapshot = world.state.entries.get_snapshot(ENTRY)
    assert snapshot is not None
    view = overview(world.sources())
    summary = next(e for e in view.entries if e.name == ENTRY)
    assert summary.counts == GlideinCounts.from_mapping(snapshot.counts["entry"])
    assert (summary.counts.idle, summary.counts.running) == (5, 3)
    assert (summary.requested_idle, summary.requested_max) == (5, 50)
    assert summary.site == "SIM_SITE" and summary.backend == "simulated"
    assert summary.limits.max_glideins == 1000
    assert view.totals == summary.counts  # the other entries have no glideins
    assert [e.name for e in view.entries] == list(world.config.entries)
    assert view.frontends == ["cms_frontend", "dune_frontend"]


def test_an_entry_never_queried_is_stale_without_an_age(memory_world: FactoryWorld) -> None:
    snapshot = summary_of(running_world(memory_world), "local_cluster").snapshot
    assert (snapshot.taken_at, snapshot.age_seconds, snapshot.stale) == (None, None, True)


def test_counts_older_than_the_freshness_bound_are_stale(memory_world: FactoryWorld) -> None:
    world = running_world(memory_world)
    world.clock.now += STALE_LOOPS * LOOP
    fresh = summary_of(world).snapshot
    world.clock.now += 1
    stale = summary_of(world).snapshot
    assert (fresh.stale, fresh.age_seconds) == (False, STALE_LOOPS * LOOP)
    assert (stale.stale, stale.age_seconds) == (True, STALE_LOOPS * LOOP + 1)


def test_a_failed_glidein_query_shows_why_and_marks_the_entry_stale(
    memory_world: FactoryWorld,
) -> None:
    backend = memory_world.others["local_cluster"]
    assert isinstance(backend, MemoryGridBackend)
    backend.fail_next(Operation.QUERY, TransientError("schedd unreachable"))
    monitor_entry(memory_world.deps, "local_cluster")
    snapshot = summary_of(memory_world, "local_cluster").snapshot
    assert snapshot.stale
    assert snapshot.error is not None and "schedd unreachable" in snapshot.error


def test_completed_and_failed_count_the_last_hour_only(memory_world: FactoryWorld) -> None:
    world = memory_world
    world.ended("old.0", GlideinResult.VALIDATION_FAILED, VALIDATION)
    world.clock.now += 2 * 3600
    world.ended("1.0", GlideinResult.OK)
    world.ended("1.1", GlideinResult.OK)
    world.ended("1.2", GlideinResult.VALIDATION_FAILED, VALIDATION)
    world.ended("1.3", GlideinResult.KILLED)
    summary = summary_of(world)
    assert (summary.completed_last_hour, summary.failed_last_hour) == (4, 2)
    view = overview(world.sources())
    assert (view.completed_last_hour, view.failed_last_hour) == (4, 2)


def test_a_downtime_shows_its_reason_period_and_comment(memory_world: FactoryWorld) -> None:
    memory_world.downtimes = parse_downtimes(
        "2023-01-01T00:00:00+00:00 None simulated_site # CE upgrade\n", "test"
    )
    down = summary_of(memory_world).downtime
    assert down is not None
    assert (down.reason, down.end, down.comment) == ("entry_downtime", None, "CE upgrade")
    assert summary_of(memory_world, "local_cluster").downtime is None


def test_a_factory_downtime_shows_on_every_entry(memory_world: FactoryWorld) -> None:
    memory_world.downtimes = parse_downtimes("2023-01-01T00:00:00 2099-01-01T00:00:00\n", "t")
    entries = overview(memory_world.sources()).entries
    assert {e.downtime.reason for e in entries if e.downtime} == {"factory_downtime"}
    assert all(e.downtime is not None for e in entries)


def test_limits_triggered_are_the_ones_the_ads_advertise(memory_world: FactoryWorld) -> None:
    world = memory_world
    world.request(150, max_glideins=500)
    world.cycle()
    flags = summary_of(world).limits_triggered
    assert flags == {f"IdlePerClass_{FRONTEND_KEY}": "count=100, limit=100"}
    [ad] = world.hub.handle("reader").query(AdType.GLIDEFACTORY_CLIENT)
    advertised = FactoryClientAd.from_attrs(ad.attrs).limits_triggered
    assert {(f.limit.value, f.frontend_key, f.text) for f in advertised} == {
        ("IdlePerClass", FRONTEND_KEY, "count=100, limit=100")
    }


# --- gwms status: the same numbers -----------------------------------------------------------


def test_gwms_status_counts_what_the_pages_count(memory_world: FactoryWorld) -> None:
    world = memory_world
    world.request(150, max_glideins=500)
    world.cycle()
    [status] = factory_status(world.state, world.config, world.downtimes, world.clock.now, [ENTRY])
    summary = summary_of(world)
    [client] = status.clients
    assert (status.requested_idle, status.requested_max) == (150, 500)
    assert (summary.requested_idle, summary.requested_max) == (150, 500)
    assert flag_texts(client.limits_triggered) == summary.limits_triggered
    assert summary.limits_triggered == {f"IdlePerClass_{FRONTEND_KEY}": "count=100, limit=100"}
    assert status.to_json()["clients"][0]["limits_triggered"] == summary.limits_triggered
    assert status.to_json()["limits_triggered"] == {}


def test_gwms_status_no_longer_counts_a_request_gone_for_a_few_loops(
    memory_world: FactoryWorld,
) -> None:
    world = memory_world
    world.request(150, max_glideins=500)
    world.cycle()
    world.hub.handle(IDENTITY).invalidate(AdType.GLIDECLIENT, "true")
    world.clock.now += LIVE_DECISION_LOOPS * LOOP + 1
    world.cycle()  # find-work no longer sees the request: its last decision stays, aging
    [status] = factory_status(world.state, world.config, world.downtimes, world.clock.now, [ENTRY])
    [client] = status.clients
    assert (status.requested_idle, status.requested_max, client.requested_idle) == (0, 0, 0)
    assert (status.limits_triggered, client.limits_triggered) == ([], [])
    assert client.reasons == ["frontend_max_idle"]  # its last decision is still shown


# --- entry page -----------------------------------------------------------------------------


def test_the_entry_page_shows_each_clients_last_decision_with_reason_and_inputs(
    memory_world: FactoryWorld,
) -> None:
    world = running_world(memory_world)
    [(work_key, stored)] = world.state.entries.decisions(ENTRY).items()
    detail = entry_detail(world.sources(), ENTRY)
    [client] = detail.clients
    [decision] = client.decisions
    assert client.client == CLIENT
    assert client.counts.running == 3
    assert decision.work_key == work_key
    assert decision.outcome == "decided"
    assert decision.reason == stored["submit"]["reason"] == "request_met"
    assert decision.explanation == stored["explain"]
    assert decision.frontend_key == FRONTEND_KEY
    assert decision.inputs is not None
    assert decision.inputs.entry == GlideinCounts.from_mapping(stored["submit"]["entry"])
    assert decision.inputs.frontend_limits.max_idle == 100


def test_a_request_gone_for_a_few_loops_no_longer_counts_as_requested(
    memory_world: FactoryWorld,
) -> None:
    world = running_world(memory_world, cycles=1)
    world.hub.handle(IDENTITY).invalidate(AdType.GLIDECLIENT, "true")
    world.clock.now += LIVE_DECISION_LOOPS * LOOP + 1
    world.cycle()  # find-work no longer sees the request: its last decision stays, aging
    summary = summary_of(world)
    [decision] = entry_detail(world.sources(), ENTRY).clients[0].decisions
    assert (summary.requested_idle, summary.requested_max) == (0, 0)
    assert not decision.current and decision.requested_idle == 5


def test_a_rejected_request_shows_its_rejection(memory_world: FactoryWorld) -> None:
    ad = memory_world.frontend.request(ENTRY, idle=3)
    memory_world.hub.handle("intruder").advertise(AdType.GLIDECLIENT, [ad])
    find_work(memory_world.deps, ENTRY, "run-x")
    [decision] = entry_detail(memory_world.sources(), ENTRY).clients[0].decisions
    assert (decision.outcome, decision.reason, decision.submit) == (
        "rejected",
        "identity_mismatch",
        0,
    )
    assert "intruder" in decision.explanation


def test_a_failed_closed_pass_shows_that_nothing_was_submitted(memory_world: FactoryWorld) -> None:
    failing = MemoryGridBackend(FACTORY_WRITER, "gfactory_instance", ENTRY, memory_world.clock)
    failing.fail_next(Operation.QUERY, TransientError("CE timed out"))
    memory_world.backend = failing  # type: ignore[assignment]
    memory_world.request(4)
    find_work(memory_world.deps, ENTRY, "run-x")
    [decision] = entry_detail(memory_world.sources(), ENTRY).clients[0].decisions
    assert (decision.outcome, decision.reason, decision.submit) == (
        "failed_closed",
        "query_failed",
        0,
    )
    assert "CE timed out" in decision.explanation


@pytest.mark.parametrize(
    ("record", "current"),
    [
        ({"at": START - LIVE_DECISION_LOOPS * LOOP}, True),
        ({"at": START - LIVE_DECISION_LOOPS * LOOP - 1}, False),
        ({"at": START + 5}, True),
        ({"at": START, "rejected": "identity_mismatch"}, True),  # current; it requests nothing
        ({}, False),
        ({"at": "yesterday"}, False),
        ({"at": True}, False),
    ],
)
def test_a_decision_is_current_for_a_few_loops_only(
    record: dict[str, object], current: bool
) -> None:
    assert is_current(record, START, LOOP) is current


def test_the_limits_of_a_pass_long_gone_are_no_longer_triggered(
    memory_world: FactoryWorld,
) -> None:
    world = memory_world
    world.request(150, max_glideins=500)
    world.cycle()
    assert summary_of(world).limits_triggered
    world.clock.now += LIVE_DECISION_LOOPS * LOOP + 1
    assert summary_of(world).limits_triggered == {}


def test_the_entry_page_reads_each_record_of_the_entry_once(memory_world: FactoryWorld) -> None:
    world = running_world(memory_world)
    world.ended("1.0", GlideinResult.OK)
    sources, calls = world.counted_sources()
    detail = entry_detail(sources, ENTRY)
    assert (calls["get_snapshot"], calls["decisions"], calls["stats"]) == (1, 1, 1)
    assert (detail.summary.completed_last_hour, detail.completed_last_hour.completed) == (1, 1)
    assert detail.clients[0].counts == detail.summary.counts


def test_the_overview_reads_each_entry_once(memory_world: FactoryWorld) -> None:
    sources, calls = running_world(memory_world).counted_sources()
    overview(sources)
    entries = len(memory_world.config.entries)
    assert (calls["get_snapshot"], calls["decisions"], calls["stats"]) == (entries,) * 3


def test_decision_records_with_odd_fields_still_show() -> None:
    view = decision_view(
        "k", {"client": 5, "at": "yesterday", "submit": {"count": "3", "client": [1]}}
    )
    assert (view.client, view.at, view.submit, view.outcome) == ("", 0.0, 0, "decided")
    assert view.inputs is not None and view.inputs.client == GlideinCounts()


def test_recent_completed_glideins_show_their_failure_category(memory_world: FactoryWorld) -> None:
    memory_world.ended("9.0", GlideinResult.OK)
    memory_world.clock.now += 10
    memory_world.ended("9.1", GlideinResult.VALIDATION_FAILED, VALIDATION)
    detail = entry_detail(memory_world.sources(), ENTRY)
    assert [c.job_id for c in detail.recent_completed] == ["9.1", "9.0"]
    failed = detail.recent_completed[0]
    assert (failed.result, failed.failure_category, failed.failed_script) == (
        "validation_failed",
        VALIDATION,
        "check_disk.sh",
    )
    assert detail.completed_last_hour.by_category == {VALIDATION: 1}
    assert detail.clients[0].completed_last_hour.failed == 1


def test_an_unknown_entry_is_refused(memory_world: FactoryWorld) -> None:
    with pytest.raises(UnknownEntry):
        entry_detail(memory_world.sources(), "nowhere")
    with pytest.raises(UnknownEntry):
        entry_series(memory_world.sources(), "nowhere", "hour")


# --- time series ------------------------------------------------------------------------------


def test_series_come_as_columns_aligned_with_the_times(memory_world: FactoryWorld) -> None:
    world = running_world(memory_world)
    stored = world.state.series.series(ENTRY, "minute", 0)
    view = entry_series(world.sources(), ENTRY, "hour")
    assert view.times == [t for t, _ in stored]
    assert view.values["running"] == [v["running"] for _, v in stored]
    assert view.values[f"client:{CLIENT}:idle"] == [v[f"client:{CLIENT}:idle"] for _, v in stored]
    assert view.resolution == "minute"


def test_the_hour_window_leaves_out_older_points_the_day_keeps(memory_world: FactoryWorld) -> None:
    world = running_world(memory_world, cycles=1)
    world.clock.now += 2 * 3600
    world.cycle()
    assert len(entry_series(world.sources(), ENTRY, "hour").times) == 1
    assert len(entry_series(world.sources(), ENTRY, "day").times) == 2
    month = entry_series(world.sources(), ENTRY, "month")
    assert (month.resolution, len(month.times)) == ("hour", 2)


def test_a_value_missing_from_a_sample_is_none(memory_world: FactoryWorld) -> None:
    memory_world.state.series.add(ENTRY, memory_world.clock.now - 120, {"idle": 1.0})
    memory_world.state.series.add(ENTRY, memory_world.clock.now, {"idle": 2.0, "held": 1.0})
    view = entry_series(memory_world.sources(), ENTRY, "hour")
    assert view.values == {"idle": [1.0, 2.0], "held": [None, 1.0]}


def test_the_factory_wide_series_is_served_like_an_entrys(memory_world: FactoryWorld) -> None:
    world = running_world(memory_world)
    values = aggregate(world.deps)
    view = entry_series(world.sources(), FACTORY_SERIES, "hour")
    assert (view.entry, len(view.times)) == (FACTORY_SERIES, 1)
    assert {name: column[-1] for name, column in view.values.items()} == values
    assert view.values["running"] == [3]


def test_an_unknown_range_is_refused(memory_world: FactoryWorld) -> None:
    with pytest.raises(ValueError, match="unknown range 'year'"):
        entry_series(memory_world.sources(), ENTRY, "year")


# --- glideins list ----------------------------------------------------------------------------


def test_the_glideins_list_reads_the_backend(memory_world: FactoryWorld) -> None:
    world = running_world(memory_world)
    world.backend.hold([world.glideins()[0].job_id])
    listed = glidein_list(world.sources(), ENTRY)
    assert listed.available
    assert {g.job_id for g in listed.glideins} == {g.job_id for g in world.glideins()}
    held = [g for g in listed.glideins if g.status == "held"]
    assert len(held) == 1 and held[0].hold_reason
    assert {g.site for g in listed.glideins} == {"SIM_SITE"}


def test_the_glideins_list_fails_soft(memory_world: FactoryWorld) -> None:
    def unreachable(entry: str) -> list[object]:
        raise TransientError("schedd unreachable")

    failed = glidein_list(memory_world.sources(glideins=unreachable), ENTRY)
    assert (failed.available, failed.glideins) == (False, [])
    assert failed.message is not None and "schedd unreachable" in failed.message
    absent = glidein_list(memory_world.sources(glideins=None), ENTRY)
    assert not absent.available and absent.message


# --- frontend page ----------------------------------------------------------------------------


def test_the_frontend_page_lists_its_requests_credentials_and_monitoring(
    memory_world: FactoryWorld,
) -> None:
    world = running_world(memory_world)
    world.credential(expires_in=7200)
    view = frontend_view(world.sources(), FRONTEND)
    [request] = view.requests
    assert (request.entry, request.decision.client) == (ENTRY, CLIENT)
    assert request.glideins.running == 3
    [credential] = view.credentials
    assert (credential.credential_id, credential.expires_in_seconds) == ("cred1", 7200)
    [monitoring] = view.client_monitoring
    assert (monitoring.entry, monitoring.client) == (ENTRY, CLIENT)
    assert monitoring.monitor["StatusRunning"] == 3
    assert monitoring.monitor["RequestedIdle"] == 5
    assert view.monitoring_message is None
    assert view.security_classes == {"analysis": "fe_cms", "production": "fe_cms_pilot"}


def test_another_frontend_sees_nothing_of_it(memory_world: FactoryWorld) -> None:
    world = running_world(memory_world)
    world.credential(expires_in=None)
    view = frontend_view(world.sources(), "dune_frontend")
    assert (view.requests, view.credentials, view.client_monitoring) == ([], [], [])


def test_monitoring_ads_written_by_someone_else_are_ignored(memory_world: FactoryWorld) -> None:
    world = running_world(memory_world)
    [ad] = world.hub.handle("reader").query(AdType.GLIDEFACTORY_CLIENT)
    forged = {**ad.attrs, "GlideinMonitorStatusRunning": 999}
    world.hub.handle(IDENTITY).advertise(AdType.GLIDEFACTORY_CLIENT, [forged])
    [monitoring] = frontend_view(world.sources(), FRONTEND).client_monitoring
    assert monitoring.monitor["StatusRunning"] == 3


def test_the_frontend_page_fails_soft_without_the_dashboard(memory_world: FactoryWorld) -> None:
    world = running_world(memory_world)

    class Down:
        def query(self, ad_type: str, constraint: str | None = None) -> list[object]:
            raise TransientError("collector unreachable")

    view = frontend_view(world.sources(dashboard=Down()), FRONTEND)
    assert view.client_monitoring == []
    assert (
        view.monitoring_message is not None and "collector unreachable" in view.monitoring_message
    )
    assert len(view.requests) == 1


def test_an_unknown_frontend_is_refused(memory_world: FactoryWorld) -> None:
    with pytest.raises(UnknownFrontend):
        frontend_view(memory_world.sources(), "nobody")


# --- failed submits ---------------------------------------------------------------------------


def test_failed_submits_are_listed_with_their_reason(memory_world: FactoryWorld) -> None:
    failed = memory_world.refused_submit(idle=4)
    view = failed_submits(memory_world.sources())
    [row] = view.failed
    assert (row.failed_id, row.entry, row.client, row.count) == (failed.failed_id, ENTRY, CLIENT, 4)
    assert row.reason == "the CE refused the job"
    assert view.retry_enabled
    assert not failed_submits(memory_world.sources(retry=None)).retry_enabled
    assert [r.failed_id for r in entry_detail(memory_world.sources(), ENTRY).failed_submits] == [
        failed.failed_id
    ]
