"""`gwms status`, `explain`, `submits` and `dashboard` against a real factory on real Redis."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from gwms_tasks.queues import user_queue
from gwms_tasks.services.submit import execute_submit, record_failed_submit
from tests.integration.cli_helpers import (
    CLIENT,
    ENTRY,
    IDENTITY,
    LOCAL_ENTRY,
    USER,
    Factory,
    broker_url,
    run,
    write_config,
)

pytestmark = pytest.mark.redis


@pytest.fixture
def factory(tmp_path: Path, redis_url: str) -> Iterator[Factory]:
    started = Factory.start(tmp_path, redis_url)
    yield started
    started.close()


def _row(lines: list[str], entry: str, client: str) -> str:
    [line] = [line for line in lines if line.split()[:2] == [entry, client]]
    return line


def _column(lines: list[str], header: str, entry: str, client: str) -> str:
    """The cell under ``header`` in the row of (entry, client): the columns are aligned."""
    return _row(lines, entry, client)[lines[0].index(header) :].split()[0]


# ------------------------------------------------------------------------------ status


def test_status_shows_what_find_work_decided_and_the_glideins_counted(factory: Factory) -> None:
    factory.request(idle=5)
    assert factory.find_work("run-1").submitted == 5
    [order] = factory.take_orders()
    execute_submit(factory.user, order)
    factory.find_work("run-2")  # counts the 5 new glideins; nothing more to submit

    result = run("status", config=factory.config_path)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == [
        "ENTRY", "CLIENT", "IDLE", "RUNNING", "HELD", "REQ_IDLE", "REQ_MAX", "COUNTED", "LIMITS",
        "REASON",
    ]  # fmt: skip
    assert _column(lines, "IDLE", ENTRY, CLIENT) == "5"
    assert _column(lines, "REQ_IDLE", ENTRY, CLIENT) == "5"
    assert _column(lines, "REQ_MAX", ENTRY, CLIENT) == "20"
    assert _row(lines, ENTRY, CLIENT).endswith("request_met")
    assert _column(lines, "IDLE", ENTRY, "*") == "5"
    assert _row(lines, ENTRY, "*").split()[7:9] == ["0s", "ago"]
    assert "STALE never" in _row(lines, LOCAL_ENTRY, "*")

    data = json.loads(run("status", "--json", config=factory.config_path).output)
    [ce1] = [e for e in data["entries"] if e["entry"] == ENTRY]
    assert ce1["counts"]["idle"] + ce1["counts"]["running"] == 5
    assert ce1["snapshot"]["stale"] is False
    [client] = ce1["clients"]
    assert (client["client"], client["requested_idle"], client["reasons"]) == (
        CLIENT,
        5,
        ["request_met"],
    )
    explained = run("explain", ENTRY, config=factory.config_path).output
    assert "    submit.client: idle 5 (wait 5), running 0, held 0, total 5\n" in explained


def test_status_names_the_limit_that_capped_a_request(factory: Factory) -> None:
    factory.request(idle=12)  # entry max idle is 8
    assert factory.find_work("run-1").submitted == 8
    result = run("status", "--entry", ENTRY, config=factory.config_path)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 3  # header, the entry, its one client
    assert "IdleGlideinsPerEntry 8/8" in lines[1]
    assert lines[2].endswith("entry_max_idle")


def test_status_json_gives_the_limits_reached_by_name_with_their_numbers(factory: Factory) -> None:
    factory.request(idle=12)  # entry max idle is 8
    factory.find_work("run-1")
    result = run("status", "--json", "--entry", ENTRY, config=factory.config_path)
    [entry] = json.loads(result.output)["entries"]
    assert entry["limits_triggered"] == {"IdleGlideinsPerEntry": "count=8, limit=8"}
    assert [client["limits_triggered"] for client in entry["clients"]] == [{}]


def test_status_shows_a_failed_query_and_downtimes(factory: Factory) -> None:
    factory.runtime.state.entries.record_query_failure(LOCAL_ENTRY, "site unreachable", 1.0)
    added = run("downtime", "add", "--entry", LOCAL_ENTRY, config=factory.config_path)
    assert added.exit_code == 0, added.output
    result = run("status", "--entry", LOCAL_ENTRY, config=factory.config_path)
    [row] = result.output.splitlines()[1:]
    assert "STALE" in row
    assert row.endswith("downtime: entry_downtime; glidein query failed: site unreachable")


def test_status_of_an_unknown_entry_is_a_clear_error(factory: Factory) -> None:
    result = run("status", "--entry", "nope", config=factory.config_path)
    assert result.exit_code == 1
    assert result.stderr == f"gwms: unknown entry nope (configured: {ENTRY}, {LOCAL_ENTRY})\n"


def test_a_bad_config_file_is_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "factory.yaml"
    path.write_text("factory: [\n")
    result = run("status", config=path)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{path}: line ")
    assert "Traceback" not in result.output


def test_an_unreachable_state_redis_is_one_clear_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, "redis://127.0.0.1:1/0")
    result = run("status", config=config)
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("gwms: cannot read the accepted config hash: ")
    assert "Connection refused" in line


# ------------------------------------------------------------------------------ explain


def test_explain_shows_the_whole_decision(factory: Factory) -> None:
    factory.request(idle=12)
    factory.find_work("run-1")
    result = run("explain", ENTRY, "--client", CLIENT, config=factory.config_path)
    assert result.exit_code == 0, result.output
    text = result.output
    assert text.startswith(f"{ENTRY} / {CLIENT}  (request ")
    assert "  reason:      entry_max_idle\n" in text
    assert "  explanation: submit 8: limited by entry max idle (count=0, limit=8)\n" in text
    assert "    submit.entry_limits: max_glideins=10000, max_held=1000, max_idle=8\n" in text
    assert "    submit.entry: idle 0, running 0, held 0, total 0\n" in text
    assert "    submit.requested_idle: 12\n" in text

    data = json.loads(run("explain", ENTRY, "--json", config=factory.config_path).output)
    [decision] = data["decisions"]
    assert decision["client"] == CLIENT
    assert decision["submit"]["count"] == 8
    assert decision["work_key"].endswith(f"@{CLIENT}")


def test_explain_a_rejected_request_says_why(factory: Factory) -> None:
    factory.request(idle=3)
    factory.frontend.identity = "someone@else.example.org"  # the encrypted identity lies
    factory.request(idle=3)
    factory.find_work("run-1")
    result = run("explain", ENTRY, config=factory.config_path)
    assert "  outcome:     rejected (identity_mismatch)\n" in result.output


def test_explain_without_decisions_and_with_unknown_names(factory: Factory) -> None:
    quiet = run("explain", ENTRY, config=factory.config_path)
    assert quiet.exit_code == 0
    assert "no decision recorded yet" in quiet.output
    unknown = run("explain", "nope", config=factory.config_path)
    assert unknown.exit_code == 1 and "unknown entry nope" in unknown.stderr
    factory.request(idle=1)
    factory.find_work("run-1")
    stranger = run("explain", ENTRY, "--client", "fe9.x", config=factory.config_path)
    assert stranger.exit_code == 1
    assert stranger.stderr == (
        f"gwms: no decision for client fe9.x on entry {ENTRY} (clients with decisions: {CLIENT})\n"
    )


# ------------------------------------------------------------------------------ submits


def _broker_orders(redis_url: str) -> list[dict[str, Any]]:
    """The submit orders waiting in the user's queue on the broker (kombu's Redis layout)."""
    client = redis.Redis.from_url(broker_url(redis_url))
    try:
        messages = [json.loads(raw) for raw in client.lrange(user_queue(USER), 0, -1)]
    finally:
        client.close()
    orders = []
    for message in messages:
        assert message["headers"]["task"] == "gwms.submit"
        _args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        orders.append(kwargs["order"])
    return orders


def _fail_one(factory: Factory, idle: int) -> str:
    factory.request(idle=idle)
    factory.find_work("run-1")
    [order] = factory.take_orders()
    key = order.tags.submit_key
    record_failed_submit(factory.user, order, "the CE refused the job", failed_id=key)
    return key


def test_failed_submits_are_listed(factory: Factory) -> None:
    key = _fail_one(factory, idle=5)
    result = run("submits", "failed", config=factory.config_path)
    assert result.exit_code == 0
    header, row = result.output.splitlines()
    assert header.split() == ["ID", "ENTRY", "CLIENT", "COUNT", "RETRIES", "FAILED", "REASON"]
    assert row.split()[:5] == [key, ENTRY, CLIENT, "5", "0"]
    assert row.endswith("the CE refused the job")
    [listed] = json.loads(run("submits", "failed", "--json", config=factory.config_path).output)
    assert (listed["id"], listed["count"], listed["retries"]) == (key, 5, 0)


def test_a_retry_goes_to_the_user_queue_on_the_broker_once(
    factory: Factory, redis_url: str
) -> None:
    key = _fail_one(factory, idle=5)
    result = run("submits", "retry", key, config=factory.config_path)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{key}: sent 5 of 5 as {key}-r1: submit 5: request granted")
    [order] = _broker_orders(redis_url)
    assert (order["tags"]["submit_key"], order["count"]) == (f"{key}-r1", 5)
    assert run("submits", "failed", config=factory.config_path).output == "no failed submits\n"

    again = run("submits", "retry", key, config=factory.config_path)
    assert again.exit_code == 1
    assert again.output == f"{key}: not found: no such failed submit\n"
    assert len(_broker_orders(redis_url)) == 1


def test_a_retry_with_no_room_left_is_refused_and_changes_nothing(
    factory: Factory, redis_url: str
) -> None:
    key = _fail_one(factory, idle=8)
    factory.find_work("run-2")  # the request is still there: 8 more are submitted
    [order] = factory.take_orders()
    execute_submit(factory.user, order)  # and wait in the queue: the entry is full
    refused = run("submits", "retry", "--all", config=factory.config_path)
    assert refused.exit_code == 1
    assert refused.output == (
        f"{key}: refused: submit 0: blocked by entry max idle (count=8, limit=8)\n"
    )
    assert _broker_orders(redis_url) == []
    assert key in run("submits", "failed", config=factory.config_path).output


def test_retry_needs_ids_or_all(factory: Factory) -> None:
    neither = run("submits", "retry", config=factory.config_path)
    both = run("submits", "retry", "x", "--all", config=factory.config_path)
    assert neither.exit_code == both.exit_code == 2
    assert "give failed submit IDs, or --all" in both.output
    assert run("submits", "retry", "--all", config=factory.config_path).output == (
        "no failed submits\n"
    )


# ------------------------------------------------------------------------------ dashboard


def test_a_frontend_connects_with_the_printed_url_and_only_as_itself(factory: Factory) -> None:
    client = redis.Redis.from_url(factory.frontend_url)
    try:
        assert client.ping()
        factory.request(idle=1)  # writes under its own prefix
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.hset("gwms:dash:w:fe2@frontend.example.org:glideclient", "x", "y")
    finally:
        client.close()


def test_add_frontend_prints_only_the_url_on_stdout(factory: Factory) -> None:
    result = run(
        "dashboard",
        "add-frontend",
        "fe2",
        "--host",
        "redis.example.org",
        config=factory.config_path,
    )
    assert result.exit_code == 0
    [url] = result.stdout.splitlines()
    assert url.startswith("redis://fe2%40frontend.example.org:")
    assert "@redis.example.org:" in url
    password = url.split(":")[2].split("@")[0]
    assert password not in result.stderr
    assert "fe2@frontend.example.org ready" in result.stderr


def test_remove_frontend_cuts_it_off(factory: Factory) -> None:
    removed = run("dashboard", "remove-frontend", "fe1", config=factory.config_path)
    assert removed.exit_code == 0, removed.output
    client = redis.Redis.from_url(factory.frontend_url)
    with pytest.raises(redis.exceptions.AuthenticationError):
        client.ping()
    client.close()
    again = run("dashboard", "remove-frontend", "fe1", config=factory.config_path)
    assert again.exit_code == 1
    assert again.stderr == f"gwms: there is no dashboard user {IDENTITY} (nothing removed)\n"


def test_add_an_unknown_frontend_is_refused(factory: Factory) -> None:
    result = run("dashboard", "add-frontend", "fe9", config=factory.config_path)
    assert result.exit_code == 1
    assert result.stderr.startswith("gwms: unknown frontend 'fe9'; configured: fe1 (")


def test_dashboard_check_warns_about_an_unsafe_state_redis(
    factory: Factory, redis_client: redis.Redis
) -> None:
    assert run("dashboard", "check", config=factory.config_path).exit_code == 0
    redis_client.config_set("maxmemory-policy", "allkeys-lru")
    try:
        result = run("dashboard", "check", config=factory.config_path)
    finally:
        redis_client.config_set("maxmemory-policy", "noeviction")
    assert result.exit_code == 1
    assert result.output.startswith("state Redis: Redis maxmemory-policy is 'allkeys-lru'")
