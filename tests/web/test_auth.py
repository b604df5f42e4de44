"""Who may read and who may act: the operator token of ``web.operator_token``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from gwms_tasks.config_file import read_config
from gwms_tasks.core.config import WebConfig
from gwms_tasks.runtime import Runtime
from gwms_tasks.schedule import reload, token_digest
from gwms_tasks.services.monitoring_view import MonitoringSources
from tests.web.conftest import live_server
from tests.web.world import ENTRY, FactoryWorld, config_file
from web.app import create_app
from web.wiring import runtime_sources

TOKEN = "operator-token-0123456789"
READS = ("/api/overview", f"/api/entries/{ENTRY}", "/api/frontends/cms_frontend", "/metrics")
RETRY = "/api/failed-submits/{failed_id}/retry"


@contextmanager
def served(world: FactoryWorld, tmp_path: Path, **web: object) -> Iterator[httpx.Client]:
    """The app with these ``web`` settings; a client without any token."""
    stage = tmp_path / "stage"
    stage.mkdir(exist_ok=True)
    (stage / "signatures.sha1").write_text("index\n")
    config = world.config.model_copy(update={"web": WebConfig.model_validate(web)})
    app = create_app(world.sources(config=config), stage)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def failed_id(memory_world: FactoryWorld) -> str:
    memory_world.request(2)
    memory_world.cycle()
    failed = memory_world.refused_submit(idle=4)
    memory_world.cycle()
    return failed.failed_id


def test_a_retry_without_the_token_is_refused_and_changes_nothing(
    memory_world: FactoryWorld, failed_id: str, tmp_path: Path
) -> None:
    with served(memory_world, tmp_path, operator_token=TOKEN) as client:
        response = client.post(RETRY.format(failed_id=failed_id))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "operator token" in response.json()["detail"]
    assert memory_world.state.failed.get(failed_id) is not None
    assert memory_world.dispatcher.submits == {}


@pytest.mark.parametrize(
    "headers",
    [
        bearer("operator-token-0123456780"),
        bearer(TOKEN + "x"),
        {"Authorization": "Bearer"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
    ],
)
def test_a_retry_with_a_wrong_token_is_refused(
    memory_world: FactoryWorld, failed_id: str, tmp_path: Path, headers: dict[str, str]
) -> None:
    with served(memory_world, tmp_path, operator_token=TOKEN) as client:
        response = client.post(RETRY.format(failed_id=failed_id), headers=headers)
    assert response.status_code == 401
    assert memory_world.state.failed.get(failed_id) is not None


def test_a_retry_with_the_token_is_done(
    memory_world: FactoryWorld, failed_id: str, tmp_path: Path
) -> None:
    with served(memory_world, tmp_path, operator_token=TOKEN) as client:
        response = client.post(RETRY.format(failed_id=failed_id), headers=bearer(TOKEN))
    assert response.status_code == 200
    assert response.json()["outcome"]["status"] == "sent"
    assert memory_world.state.failed.get(failed_id) is None


def test_without_a_configured_token_writes_are_disabled_for_everybody(
    memory_world: FactoryWorld, failed_id: str, tmp_path: Path
) -> None:
    with served(memory_world, tmp_path) as client:
        response = client.post(RETRY.format(failed_id=failed_id), headers=bearer(TOKEN))
    assert response.status_code == 403
    assert "no web.operator_token is set" in response.json()["detail"]
    assert memory_world.state.failed.get(failed_id) is not None


def test_a_server_without_the_retry_service_says_so(
    memory_world: FactoryWorld, failed_id: str, tmp_path: Path
) -> None:
    config = memory_world.config.model_copy(
        update={"web": WebConfig.model_validate({"operator_token": TOKEN})}
    )
    app = create_app(memory_world.sources(config=config, retry=None), tmp_path)
    with live_server(app) as url:
        response = httpx.post(url + RETRY.format(failed_id=failed_id), headers=bearer(TOKEN))
    assert response.status_code == 503
    assert "not available" in response.json()["detail"]


def test_reads_are_public_by_default(memory_world: FactoryWorld, tmp_path: Path) -> None:
    with served(memory_world, tmp_path, operator_token=TOKEN) as client:
        assert [client.get(path).status_code for path in READS] == [200] * len(READS)


def test_private_reads_need_the_token(memory_world: FactoryWorld, tmp_path: Path) -> None:
    with served(memory_world, tmp_path, operator_token=TOKEN, public_read=False) as client:
        refused = [client.get(path) for path in READS]
        wrong = [client.get(path, headers=bearer("not-the-token-at-all")) for path in READS]
        allowed = [client.get(path, headers=bearer(TOKEN)) for path in READS]
    assert [r.status_code for r in refused] == [401] * len(READS)
    assert all("not public" in r.json()["detail"] for r in refused)
    assert [r.status_code for r in wrong] == [401] * len(READS)
    assert [r.status_code for r in allowed] == [200] * len(READS)


def test_private_reads_without_a_configured_token_are_refused_with_a_reason(
    memory_world: FactoryWorld, tmp_path: Path
) -> None:
    with served(memory_world, tmp_path, public_read=False) as client:
        response = client.get("/api/overview", headers=bearer(TOKEN))
    assert response.status_code == 403
    assert "no token is configured" in response.json()["detail"]


def test_private_pages_are_empty_shells_that_do_not_tell_what_exists(
    memory_world: FactoryWorld, tmp_path: Path
) -> None:
    memory_world.request(2)
    memory_world.cycle()
    with served(memory_world, tmp_path, operator_token=TOKEN, public_read=False) as client:
        real = client.get(f"/entries/{ENTRY}")
        made_up = client.get("/entries/made_up")
        overview = client.get("/")
    assert (real.status_code, made_up.status_code) == (200, 200)
    assert "cms_frontend" not in overview.text and "dune_frontend" not in overview.text


def test_the_staging_area_stays_public(memory_world: FactoryWorld, tmp_path: Path) -> None:
    with served(memory_world, tmp_path, operator_token=TOKEN, public_read=False) as client:
        response = client.get("/factory/stage/signatures.sha1")
    assert (response.status_code, response.text) == (200, "index\n")


def test_pages_carry_a_strict_content_security_policy(
    memory_world: FactoryWorld, tmp_path: Path
) -> None:
    with served(memory_world, tmp_path) as client:
        page = client.get("/")
        api = client.get("/api/overview")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in api.headers


# --- one config per request, and the token a reload sets ---------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/overview", 200),
        ("GET", "/metrics", 200),
        ("POST", "/api/failed-submits/nope/retry", 404),
    ],
)
def test_a_request_checks_the_token_of_the_config_it_reads(
    memory_world: FactoryWorld, tmp_path: Path, method: str, path: str, status: int
) -> None:
    config = memory_world.config.model_copy(
        update={"web": WebConfig.model_validate({"operator_token": TOKEN, "public_read": False})}
    )
    built: list[MonitoringSources] = []

    def provide() -> MonitoringSources:
        built.append(memory_world.sources(config=config))
        return built[-1]

    with live_server(create_app(provide, tmp_path)) as url:
        before = len(built)
        response = httpx.request(method, url + path, headers=bearer(TOKEN), timeout=10)
        during = len(built) - before
    assert response.status_code == status
    assert during == 1  # the token check and the endpoint share one set of sources


def test_a_token_configured_as_its_digest_is_checked_against_it(
    memory_world: FactoryWorld, tmp_path: Path
) -> None:
    digest = token_digest(TOKEN)
    with served(memory_world, tmp_path, operator_token=digest, public_read=False) as client:
        allowed = client.get("/api/overview", headers=bearer(TOKEN))
        the_digest = client.get("/api/overview", headers=bearer(digest))
        wrong = client.get("/api/overview", headers=bearer(TOKEN + "x"))
    assert (allowed.status_code, the_digest.status_code, wrong.status_code) == (200, 401, 401)


def test_a_reload_with_a_new_token_lets_the_new_one_in_and_the_old_one_out(
    redis_url: str, tmp_path: Path
) -> None:
    old, new = "operator-token-before-reload", "operator-token-after-reload"
    path = tmp_path / "factory.yaml"
    config_file(path, redis_url, operator_token=old, public_read=False)
    runtime = Runtime(read_config(path))
    app = create_app(runtime_sources(runtime, None), tmp_path / "stage")
    with live_server(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        before = client.get("/api/overview", headers=bearer(old))
        reload(config_file(path, redis_url, operator_token=new, public_read=False))
        runtime._checked_at = float("-inf")  # do not wait for the next poll
        with_new = client.get("/api/overview", headers=bearer(new))
        with_old = client.get("/api/overview", headers=bearer(old))
    assert before.status_code == 200
    assert (with_new.status_code, with_old.status_code) == (200, 401)
