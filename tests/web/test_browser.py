"""The pages in a real headless Chromium (Debian's chromium package, driven by Playwright).

The app serves a running test factory (real services, real Redis). Each test checks what a
person would look at, and saves a screenshot of its page under test-artifacts/screenshots/.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from gwms_tasks.core.config import WebConfig
from gwms_tasks.core.glidein_log import GlideinResult
from gwms_tasks.services.monitoring_models import GlideinCounts
from tests.redis_server import under_ci
from tests.web.conftest import live_server
from tests.web.world import CLIENT, ENTRY, FRONTEND, VALIDATION, FactoryWorld
from web.app import create_app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
TOKEN = "browser-operator-token"
TIMEOUT_MS = 10_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if CHROMIUM is None:
        if under_ci():
            pytest.fail("chromium is not installed, and CI=true requires the browser tests")
        pytest.skip("chromium is not installed (run `make test`, or apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def world(redis_world: FactoryWorld) -> FactoryWorld:
    redis_world.request(5)
    for _ in range(4):
        redis_world.cycle()
    redis_world.ended("1.0", GlideinResult.OK)
    redis_world.ended("1.1", GlideinResult.VALIDATION_FAILED, VALIDATION)
    redis_world.credential(expires_in=5400)
    return redis_world


@pytest.fixture
def site(world: FactoryWorld, tmp_path: Path) -> Iterator[str]:
    config = world.config.model_copy(
        update={"web": WebConfig.model_validate({"operator_token": TOKEN})}
    )
    app = create_app(world.sources(config=config), tmp_path, refresh_seconds=0.5)
    with live_server(app) as url:
        yield url


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    opened = context.new_page()
    opened.set_default_timeout(TIMEOUT_MS)
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"page error: {error}"))

    def console(message: ConsoleMessage) -> None:
        expected = "status of 401" in message.text  # a refused retry: the page says why
        if message.type == "error" and not expected:
            problems.append(f"console: {message.text}")

    opened.on("console", console)
    yield opened
    context.close()
    assert problems == [], "the page logged errors (scripts, CSP violations)"


def loaded(page: Page, url: str) -> None:
    page.goto(url)
    expect(page.locator("body[data-loaded]")).to_be_attached()


def cell(page: Page, table: str, key: str, column: str) -> str:
    return page.locator(f'#{table} tbody tr[data-key="{key}"] td[data-col="{column}"]').inner_text()


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def test_the_overview_shows_every_entry_with_its_numbers(
    world: FactoryWorld, site: str, page: Page
) -> None:
    snapshot = world.state.entries.get_snapshot(ENTRY)
    assert snapshot is not None
    counts = GlideinCounts.from_mapping(snapshot.counts["entry"])
    loaded(page, site + "/")
    rows = page.locator("#entries tbody tr")
    expect(rows).to_have_count(len(world.config.entries))
    assert cell(page, "entries", ENTRY, "idle") == str(counts.idle) == "5"
    assert cell(page, "entries", ENTRY, "running") == str(counts.running) == "3"
    assert cell(page, "entries", ENTRY, "held") == str(counts.held)
    assert cell(page, "entries", ENTRY, "requested_idle") == "5"
    assert cell(page, "entries", ENTRY, "max_glideins") == "1000"
    assert cell(page, "entries", ENTRY, "completed_last_hour") == "2"
    assert cell(page, "entries", ENTRY, "failed_last_hour") == "1"
    assert cell(page, "entries", "local_cluster", "freshness") == "no counts yet"
    expect(page.locator('[data-card="running"] .value')).to_have_text("3")
    expect(page.locator("#frontend-links a")).to_have_count(2)
    screenshot(page, "overview.png")


def test_the_overview_sorts_and_filters_in_the_browser(site: str, page: Page) -> None:
    loaded(page, site + "/")
    page.locator('#entries th[data-col="running"] button').click()
    page.locator('#entries th[data-col="running"] button').click()
    expect(page.locator('#entries th[data-col="running"]')).to_have_attribute(
        "aria-sort", "descending"
    )
    expect(page.locator("#entries tbody tr").first).to_have_attribute("data-key", ENTRY)
    page.locator("#entries input.filter").fill("local")
    expect(page.locator("#entries tbody tr")).to_have_count(1)
    expect(page.locator("#entries tbody tr").first).to_have_attribute("data-key", "local_cluster")


def test_the_overview_refreshes_itself(world: FactoryWorld, site: str, page: Page) -> None:
    loaded(page, site + "/")
    assert cell(page, "entries", ENTRY, "requested_idle") == "5"
    world.request(9)
    world.cycle()
    expect(
        page.locator(f'#entries tr[data-key="{ENTRY}"] td[data-col="requested_idle"]')
    ).to_have_text("9")


def test_the_entry_page_shows_the_decision_reason_and_a_chart_with_points(
    world: FactoryWorld, site: str, page: Page
) -> None:
    [(work_key, stored)] = world.state.entries.decisions(ENTRY).items()
    points = world.state.series.series(ENTRY, "minute", world.clock.now - 3600)
    loaded(page, f"{site}/entries/{ENTRY}")
    assert cell(page, "decisions", work_key, "reason") == stored["submit"]["reason"]
    assert stored["explain"] in cell(page, "decisions", work_key, "explanation")
    assert cell(page, "clients", CLIENT, "running") == "3"
    chart = page.locator("#chart")
    expect(chart).to_have_attribute("data-points", str(len(points)))
    expect(chart.locator("canvas")).to_have_count(1)
    data = page.evaluate("() => window.Gwms.charts.chart.data")
    assert data[0] == [t for t, _ in points] and len(points) == 4
    assert data[1] == [v["idle"] for _, v in points]  # the first series is "idle"
    assert chart.get_attribute("data-series") == "idle,running,held,requested_idle"
    expect(
        page.locator(f'#glideins tbody tr[data-key="{world.glideins()[0].job_id}"]')
    ).to_be_visible()
    assert cell(page, "completed", "1.1", "failure_category") == VALIDATION
    screenshot(page, "entry.png")
    page.locator('[data-range="month"]').click()
    expect(chart).to_have_attribute("data-range", "month")
    page.locator("#chart-scope").select_option(CLIENT)
    expect(chart).to_have_attribute("data-series", "idle,running,held,requested_idle")


def test_the_frontend_page_shows_requests_credentials_and_monitoring(site: str, page: Page) -> None:
    loaded(page, f"{site}/frontends/{FRONTEND}")
    expect(page.locator("#requests tbody tr")).to_have_count(1)
    assert cell(page, "credentials", f"{CLIENT}/cred1", "expires_in_seconds") == "90 min"
    assert cell(page, "monitoring", f"{ENTRY}/{CLIENT}", "running") == "3"
    screenshot(page, "frontend.png")


def test_a_failed_submit_is_retried_with_the_operator_token(
    world: FactoryWorld, site: str, page: Page
) -> None:
    failed = world.refused_submit(idle=8)
    world.cycle()
    loaded(page, site + "/failed")
    row = page.locator(f'#failed tbody tr[data-key="{failed.failed_id}"]')
    expect(row).to_be_visible()
    screenshot(page, "failed.png")
    row.locator("button.retry").click()
    expect(page.locator("#action")).to_contain_text("401")
    assert world.state.failed.get(failed.failed_id) is not None
    page.locator("details.token summary").click()
    page.locator("#token").fill(TOKEN)
    page.locator("#token-form button[type=submit]").click()
    page.locator(f'#failed tbody tr[data-key="{failed.failed_id}"] button.retry').click()
    expect(page.locator("#action")).to_contain_text(f"{failed.failed_id}: sent")
    expect(page.locator("#failed tbody tr.empty")).to_be_visible()
    assert world.state.failed.get(failed.failed_id) is None
