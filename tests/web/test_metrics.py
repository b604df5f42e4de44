"""``/metrics`` parsed with the Prometheus client's parser, against real Redis state."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gwms_tasks.core.ads import AdType
from gwms_tasks.core.downtimes import parse_downtimes
from gwms_tasks.core.glidein_log import GlideinResult
from gwms_tasks.services.monitoring_decisions import LIVE_DECISION_LOOPS
from gwms_tasks.services.monitoring_models import GlideinCounts
from tests.web.conftest import live_server
from tests.web.world import CLIENT, ENTRY, FRONTEND_KEY, IDENTITY, VALIDATION, FactoryWorld
from web.app import create_app
from web.metrics import StateCollector

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(world: FactoryWorld, stage: Path) -> tuple[Samples, set[str], str]:
    with live_server(create_app(world.sources(), stage)) as url:
        response = httpx.get(f"{url}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    types = set()
    for family in text_string_to_metric_families(response.text):
        types.add(f"{family.name}:{family.type}")
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples, types, response.text


def at(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


@pytest.fixture
def world(redis_world: FactoryWorld) -> FactoryWorld:
    redis_world.request(150, max_glideins=500)  # capped by the frontend's max idle (100)
    for _ in range(3):
        redis_world.cycle()
    return redis_world


def test_glidein_counts_per_entry_and_client_by_status(world: FactoryWorld, tmp_path: Path) -> None:
    snapshot = world.state.entries.get_snapshot(ENTRY)
    assert snapshot is not None
    entry = GlideinCounts.from_mapping(snapshot.counts["entry"])
    client = GlideinCounts.from_mapping(snapshot.counts[f"client:{CLIENT}"])
    samples, types, _ = scrape(world, tmp_path)
    for status in ("idle", "running", "held"):
        assert at(samples, "gwms_entry_glideins", entry=ENTRY, status=status) == getattr(
            entry, status
        )
        assert at(
            samples, "gwms_client_glideins", entry=ENTRY, client=CLIENT, status=status
        ) == getattr(client, status)
    assert at(samples, "gwms_entry_glideins", entry=ENTRY, status="running") == 3
    assert at(samples, "gwms_entry_glideins_detailed", entry=ENTRY, status="pending") == (
        entry.pending
    )
    assert "gwms_entry_glideins:gauge" in types


def test_requests_limits_and_reasons(world: FactoryWorld, tmp_path: Path) -> None:
    samples, _, _ = scrape(world, tmp_path)
    assert at(samples, "gwms_requested_idle_glideins", entry=ENTRY, client=CLIENT) == 150
    assert at(samples, "gwms_requested_max_glideins", entry=ENTRY, client=CLIENT) == 500
    assert at(samples, "gwms_entry_limit", entry=ENTRY, limit="max_glideins") == 1000
    assert (
        at(
            samples,
            "gwms_limit_triggered",
            entry=ENTRY,
            limit="IdlePerClass",
            frontend=FRONTEND_KEY,
        )
        == 1
    )
    [(reason, count)] = [
        (dict(labels)["reason"], value)
        for (name, labels), value in samples.items()
        if name == "gwms_requests" and dict(labels)["entry"] == ENTRY
    ]
    [stored] = world.state.entries.decisions(ENTRY).values()
    assert (reason, count) == (stored["submit"]["reason"], 1)


def test_a_request_gone_for_a_few_loops_is_no_longer_requested(
    world: FactoryWorld, tmp_path: Path
) -> None:
    world.hub.handle(IDENTITY).invalidate(AdType.GLIDECLIENT, "true")
    world.clock.now += LIVE_DECISION_LOOPS * world.config.factory.loop_delay + 1
    world.cycle()  # find-work no longer sees the request: its last decision stays, aging
    samples, _, _ = scrape(world, tmp_path)
    assert world.state.entries.decisions(ENTRY)  # still stored, but old
    names = {name for (name, labels), _ in samples.items() if dict(labels).get("entry") == ENTRY}
    assert not names & {"gwms_requested_idle_glideins", "gwms_requested_max_glideins"}
    assert "gwms_requests" not in names
    assert "gwms_limit_triggered" not in names


def test_a_scrape_reads_each_entry_once_and_no_hour_statistics(
    memory_world: FactoryWorld,
) -> None:
    memory_world.request(5)
    memory_world.cycle()
    sources, calls = memory_world.counted_sources()
    families = {family.name: family for family in StateCollector(sources).collect()}
    entries = len(memory_world.config.entries)
    assert (calls["get_snapshot"], calls["decisions"], calls["stats"]) == (entries, entries, 0)
    [requested] = families["gwms_requested_idle_glideins"].samples
    assert requested.value == 5


def test_counters_of_the_entry_are_prometheus_counters(world: FactoryWorld, tmp_path: Path) -> None:
    # Counted by the user workers (the find-work and monitor services count the rest).
    world.state.counters.add(ENTRY, {"failed_submits": 1, f"client:{CLIENT}:submitted": 100})
    stored = world.state.counters.read(ENTRY)
    samples, types, _ = scrape(world, tmp_path)
    assert stored["submitted"] >= 100  # the first pass was capped by the frontend's max idle
    for field, metric in [
        ("submitted", "gwms_glideins_submitted_total"),
        ("removed", "gwms_glideins_removed_total"),
        ("released", "gwms_glideins_released_total"),
        ("rejected", "gwms_requests_rejected_total"),
        ("failed_submits", "gwms_failed_submits_total"),
    ]:
        assert at(samples, metric, entry=ENTRY) == stored[field]
    reasons = [f.removeprefix("decision:") for f in stored if f.startswith("decision:")]
    assert "frontend_max_idle" in reasons
    for reason in reasons:
        decided = at(samples, "gwms_decisions_total", entry=ENTRY, reason=reason)
        assert decided == stored[f"decision:{reason}"]
    assert at(samples, "gwms_client_glideins_submitted_total", entry=ENTRY, client=CLIENT) == 100
    for task in ("find_work", "monitor"):
        count = at(samples, "gwms_cycle_duration_seconds_count", entry=ENTRY, task=task)
        total = at(samples, "gwms_cycle_duration_seconds_sum", entry=ENTRY, task=task)
        assert (count, total) == (stored[f"cycles:{task}"], stored[f"cycle_seconds:{task}"])
        assert count == 3
    assert {"gwms_glideins_submitted:counter", "gwms_cycle_duration_seconds:summary"} <= types


def test_completed_and_failed_glideins(world: FactoryWorld, tmp_path: Path) -> None:
    world.ended("7.0", GlideinResult.OK)
    world.ended("7.1", GlideinResult.VALIDATION_FAILED, VALIDATION)
    world.ended("7.2", GlideinResult.VALIDATION_FAILED, VALIDATION)
    samples, _, _ = scrape(world, tmp_path)
    assert at(samples, "gwms_glideins_completed_total", entry=ENTRY, result="ok") == 1
    assert (
        at(samples, "gwms_glideins_completed_total", entry=ENTRY, result="failed_validation") == 2
    )
    assert (
        at(samples, "gwms_client_glideins_completed_total", entry=ENTRY, client=CLIENT, result="ok")
        == 1
    )
    assert (
        at(samples, "gwms_glidein_validation_failures_total", entry=ENTRY, category=VALIDATION) == 2
    )
    assert at(samples, "gwms_glidein_user_jobs_total", entry=ENTRY) == 4


def test_failed_submits_freshness_and_downtime(redis_world: FactoryWorld, tmp_path: Path) -> None:
    world = redis_world
    world.request(5)
    world.cycle()
    world.refused_submit(idle=8)
    world.downtimes = parse_downtimes("2023-01-01T00:00:00 None local_cluster\n", "test")
    samples, _, _ = scrape(world, tmp_path)
    assert at(samples, "gwms_failed_submits", entry=ENTRY) == 1
    assert at(samples, "gwms_entry_stale", entry=ENTRY) == 0
    assert at(samples, "gwms_entry_stale", entry="local_cluster") == 1
    assert at(samples, "gwms_entry_snapshot_age_seconds", entry=ENTRY) == 0
    assert at(samples, "gwms_entry_in_downtime", entry="local_cluster") == 1
    assert at(samples, "gwms_entry_in_downtime", entry=ENTRY) == 0
    assert at(samples, "gwms_entry_query_failed", entry=ENTRY) == 0
    assert at(samples, "gwms_entry_enabled", entry=ENTRY) == 1
