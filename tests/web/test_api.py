"""The JSON API over HTTP against real Redis state written by the real services."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from pydantic import SecretStr
from redis.backoff import NoBackoff
from redis.retry import Retry

from gwms_tasks.adapters.redis_state import RedisState
from gwms_tasks.core.config import FactoryConfig, WebConfig
from gwms_tasks.core.glidein_log import GlideinResult
from gwms_tasks.errors import ConfigError
from gwms_tasks.keys import Keys
from gwms_tasks.ports import JsonDict
from gwms_tasks.services.aggregate import FACTORY_SERIES, aggregate
from gwms_tasks.services.monitoring_models import GlideinCounts
from gwms_tasks.services.orders import SubmitOrder
from gwms_tasks.services.retry import RetryOutcome, RetryStatus
from tests.web.conftest import live_server
from tests.web.world import CLIENT, ENTRY, FRONTEND, USER, VALIDATION, FactoryWorld
from web.app import create_app, stage_path

TOKEN = "operator-token-of-the-test"


def with_web(config: FactoryConfig, **web: object) -> FactoryConfig:
    return config.model_copy(update={"web": WebConfig.model_validate(web)})


@pytest.fixture
def world(redis_world: FactoryWorld) -> FactoryWorld:
    redis_world.request(5)
    for _ in range(3):
        redis_world.cycle()
    redis_world.ended("1.0", GlideinResult.OK)
    redis_world.ended("1.1", GlideinResult.VALIDATION_FAILED, VALIDATION)
    redis_world.credential(expires_in=3600)
    return redis_world


@pytest.fixture
def client(world: FactoryWorld, tmp_path: Path) -> Iterator[httpx.Client]:
    config = with_web(world.config, operator_token=TOKEN)
    app = create_app(world.sources(config=config), tmp_path / "stage")
    with live_server(app) as url, httpx.Client(base_url=url, timeout=10) as http:
        yield http


def test_overview_numbers_are_the_state_in_redis(world: FactoryWorld, client: httpx.Client) -> None:
    snapshot = world.state.entries.get_snapshot(ENTRY)
    decisions = world.state.entries.decisions(ENTRY)
    assert snapshot is not None
    body = client.get("/api/overview").json()
    entry = next(e for e in body["entries"] if e["name"] == ENTRY)
    counts = GlideinCounts.from_mapping(snapshot.counts["entry"])
    assert entry["counts"]["idle"] == counts.idle == 5
    assert entry["counts"]["running"] == counts.running == 3
    assert entry["counts"]["held"] == counts.held
    assert entry["requested_idle"] == sum(d["submit"]["requested_idle"] for d in decisions.values())
    assert entry["requested_max"] == sum(d["submit"]["requested_max"] for d in decisions.values())
    assert entry["snapshot"]["taken_at"] == snapshot.taken_at
    assert (entry["completed_last_hour"], entry["failed_last_hour"]) == (2, 1)
    assert body["totals"]["running"] == 3
    assert body["failed_submits"] == len(world.state.failed.list()) == 0


def test_the_entry_shows_the_stored_decision(world: FactoryWorld, client: httpx.Client) -> None:
    [stored] = world.state.entries.decisions(ENTRY).values()
    body = client.get(f"/api/entries/{ENTRY}").json()
    [decision] = body["clients"][0]["decisions"]
    assert decision["reason"] == stored["submit"]["reason"]
    assert decision["explanation"] == stored["explain"]
    assert decision["inputs"]["entry"]["running"] == stored["submit"]["entry"]["running"]
    assert body["clients"][0]["client"] == CLIENT
    assert [c["job_id"] for c in body["recent_completed"]] == ["1.1", "1.0"]
    assert body["recent_completed"][0]["failure_category"] == VALIDATION
    assert body["completed_last_hour"]["by_category"] == {VALIDATION: 1}


def test_the_series_are_the_ring_buffer(world: FactoryWorld, client: httpx.Client) -> None:
    stored = world.state.series.series(ENTRY, "minute", world.clock.now - 3600)
    body = client.get(f"/api/entries/{ENTRY}/series", params={"range": "hour"}).json()
    assert body["times"] == [t for t, _ in stored] and len(stored) == 3
    assert body["values"]["idle"] == [v["idle"] for _, v in stored]
    month = client.get(f"/api/entries/{ENTRY}/series", params={"range": "month"}).json()
    assert month["resolution"] == "hour"


def test_the_glideins_are_those_of_the_backend(world: FactoryWorld, client: httpx.Client) -> None:
    body = client.get(f"/api/entries/{ENTRY}/glideins").json()
    assert body["available"]
    assert sorted(g["job_id"] for g in body["glideins"]) == sorted(
        g.job_id for g in world.glideins()
    )


def test_the_frontend_shows_requests_credentials_and_monitoring(client: httpx.Client) -> None:
    body = client.get(f"/api/frontends/{FRONTEND}").json()
    assert [r["entry"] for r in body["requests"]] == [ENTRY]
    assert body["credentials"][0]["expires_in_seconds"] == 3600
    assert "content" not in str(body["credentials"]).lower()
    assert body["client_monitoring"][0]["monitor"]["StatusRunning"] == 3
    assert client.get("/api/frontends").json() == ["cms_frontend", "dune_frontend"]


@pytest.mark.parametrize(
    ("path", "detail"),
    [
        ("/api/entries/nowhere", "no entry 'nowhere'"),
        ("/api/entries/nowhere/series", "no entry 'nowhere'"),
        ("/api/entries/nowhere/glideins", "no entry 'nowhere'"),
        ("/api/frontends/nobody", "no frontend 'nobody'"),
    ],
)
def test_unknown_names_get_404_saying_what(client: httpx.Client, path: str, detail: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert detail in response.json()["detail"]


def test_an_unknown_range_is_refused_with_the_allowed_ones(client: httpx.Client) -> None:
    response = client.get(f"/api/entries/{ENTRY}/series", params={"range": "year"})
    assert response.status_code == 422
    assert "hour" in response.text and "month" in response.text


def test_retry_with_the_operator_token_sends_the_submit_again(
    world: FactoryWorld, client: httpx.Client
) -> None:
    failed = world.refused_submit(idle=8)
    world.cycle()  # fresh counts: a retry fails closed on stale ones
    listed = client.get("/api/failed-submits").json()
    assert [f["failed_id"] for f in listed["failed"]] == [failed.failed_id]
    response = client.post(
        f"/api/failed-submits/{failed.failed_id}/retry",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert response.status_code == 200, response.text
    outcome = response.json()["outcome"]
    assert outcome["status"] == "sent" and outcome["count"] == 3
    [order] = (SubmitOrder.from_json(raw) for raw in world.dispatcher.submits[USER])
    assert order.tags.submit_key == outcome["submit_key"]
    assert world.state.failed.get(failed.failed_id) is None


def test_retry_of_an_unknown_failed_submit_is_404(client: httpx.Client) -> None:
    response = client.post(
        "/api/failed-submits/nope/retry", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert (response.status_code, response.json()["detail"]) == (404, "no failed submit 'nope'")


def test_a_failed_submit_retried_by_someone_else_meanwhile_is_404(
    world: FactoryWorld, tmp_path: Path
) -> None:
    failed = world.refused_submit(idle=8)

    def retried_elsewhere(failed_id: str) -> JsonDict:
        return RetryOutcome(failed_id, RetryStatus.NOT_FOUND, detail="gone").to_json()

    config = with_web(world.config, operator_token=TOKEN)
    app = create_app(world.sources(config=config, retry=retried_elsewhere), tmp_path)
    with live_server(app) as url:
        response = httpx.post(
            f"{url}/api/failed-submits/{failed.failed_id}/retry",
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
    assert response.status_code == 404
    assert response.json()["detail"] == f"no failed submit {failed.failed_id!r}"


def test_the_factory_wide_series_is_served(world: FactoryWorld, client: httpx.Client) -> None:
    values = aggregate(world.deps)
    body = client.get(f"/api/entries/{FACTORY_SERIES}/series", params={"range": "day"}).json()
    assert body["entry"] == FACTORY_SERIES
    assert {name: column[-1] for name, column in body["values"].items()} == values


def test_a_state_store_that_is_down_gives_503_with_the_reason(
    world: FactoryWorld, tmp_path: Path
) -> None:
    unreachable = redis.Redis(port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    down = RedisState(unreachable, Keys())
    app = create_app(world.sources(state=down), tmp_path)
    with live_server(app) as url:
        response = httpx.get(f"{url}/api/overview", timeout=10)
    assert response.status_code == 503
    assert "Redis" in response.json()["detail"] or "redis" in response.json()["detail"]


def test_the_staging_area_is_served_at_the_path_of_the_web_url(
    world: FactoryWorld, tmp_path: Path
) -> None:
    stage = tmp_path / "stage"
    stage.mkdir()
    (stage / "signatures.sha1").write_text("index\n")
    with live_server(create_app(world.sources(), stage)) as url:
        served = httpx.get(f"{url}/factory/stage/signatures.sha1")
        missing = httpx.get(f"{url}/factory/stage/other")
    assert (served.status_code, served.text) == (200, "index\n")
    assert missing.status_code == 404


@pytest.mark.parametrize("url", ["http://h/", "http://h", "http://h/api/stage", "http://h/static"])
def test_a_staging_path_hiding_the_monitoring_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match=r"factory\.web_url"):
        stage_path(url)


def test_a_staging_path_of_its_own_is_taken() -> None:
    assert stage_path("http://factory.example.org:8080/factory/stage/") == "/factory/stage"


def test_config_reloads_show_without_a_restart(world: FactoryWorld, tmp_path: Path) -> None:
    configs = [world.config]
    app = create_app(lambda: world.sources(config=configs[-1]), tmp_path)
    with live_server(app) as url:
        before = httpx.get(f"{url}/api/overview").json()
        configs.append(
            world.config.model_copy(update={"entries": {ENTRY: world.config.entries[ENTRY]}})
        )
        after = httpx.get(f"{url}/api/overview").json()
    assert len(before["entries"]) == 3
    assert [e["name"] for e in after["entries"]] == [ENTRY]


def test_secret_values_never_reach_the_api(world: FactoryWorld, client: httpx.Client) -> None:
    bodies = [
        client.get(path).text
        for path in (
            "/api/overview",
            f"/api/entries/{ENTRY}",
            f"/api/frontends/{FRONTEND}",
            "/api/failed-submits",
        )
    ]
    assert not any("eyJ.token.sig" in body for body in bodies)
    assert not any(TOKEN in body for body in bodies)
    assert isinstance(with_web(world.config, operator_token=TOKEN).web.operator_token, SecretStr)
