"""The Celery dispatcher on a real Redis broker: expiring submit orders, the port's errors."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from gwms_tasks.adapters.celery_dispatcher import CeleryDispatcher
from gwms_tasks.adapters.memory_dispatcher import MemoryDispatcher
from gwms_tasks.celery_app import CeleryTimings, make_celery
from gwms_tasks.config_file import read_config
from gwms_tasks.errors import PermanentError, TransientError
from gwms_tasks.ports import TaskDispatcher
from gwms_tasks.queues import user_queue
from gwms_tasks.services.orders import order_lifetime
from tests.integration.cli_helpers import USER, broker_url, write_config

pytestmark = pytest.mark.redis

QUEUED_AT = 1_700_000_000.0
LOOP_DELAY = 600.0


def _dispatcher(tmp: Path, state_url: str) -> CeleryDispatcher:
    config = read_config(write_config(tmp, state_url, loop_delay=LOOP_DELAY, advertise_delay=1))
    return CeleryDispatcher(make_celery(config, include=()))


@pytest.fixture
def dispatcher(tmp_path: Path, redis_url: str) -> CeleryDispatcher:
    return _dispatcher(tmp_path, redis_url)


@pytest.fixture
def broker(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(broker_url(redis_url))
    yield client
    client.close()


def _messages(broker: redis.Redis, username: str) -> list[dict[str, Any]]:
    """The messages waiting in a user's queue (kombu's Redis layout), body decoded."""
    messages = [json.loads(raw) for raw in broker.lrange(user_queue(username), 0, -1)]
    for message in messages:
        message["kwargs"] = json.loads(base64.b64decode(message["body"]))[1]
    return messages


def test_a_submit_order_expires_at_the_end_of_its_lifetime(
    dispatcher: CeleryDispatcher, broker: redis.Redis
) -> None:
    dispatcher.send_submit(USER, {"queued_at": QUEUED_AT, "count": 3})
    [message] = _messages(broker, USER)
    assert message["headers"]["task"] == "gwms.submit"
    assert message["kwargs"] == {"order": {"queued_at": QUEUED_AT, "count": 3}}
    expires = datetime.fromisoformat(message["headers"]["expires"]).timestamp()
    assert expires == QUEUED_AT + order_lifetime(LOOP_DELAY) == QUEUED_AT + 3000
    assert expires < QUEUED_AT + CeleryTimings.for_loop_delay(LOOP_DELAY).visibility_timeout


def test_other_orders_do_not_expire(dispatcher: CeleryDispatcher, broker: redis.Redis) -> None:
    dispatcher.send_job_action(USER, {"entry": "ce1", "action": "remove", "job_ids": ["1.0"]})
    dispatcher.send_credential(USER, {"credential_id": "c1"})
    tasks = sorted(m["headers"]["task"] for m in _messages(broker, USER))
    assert tasks == ["gwms.remove", "gwms.store_credential"]
    assert [m["headers"]["expires"] for m in _messages(broker, USER)] == [None, None]


def test_a_submit_order_without_its_queue_time_is_refused(
    dispatcher: CeleryDispatcher, broker: redis.Redis
) -> None:
    with pytest.raises(PermanentError, match="without a valid queued_at"):
        dispatcher.send_submit(USER, {"count": 3})
    assert _messages(broker, USER) == []


def test_a_broker_that_is_down_is_a_transient_error(tmp_path: Path) -> None:
    down = _dispatcher(tmp_path, "redis://127.0.0.1:1/0")
    with pytest.raises(TransientError, match=r"the broker did not take the gwms\.submit order"):
        down.send_submit(USER, {"queued_at": QUEUED_AT})


def test_an_order_that_is_not_json_is_a_permanent_error(
    dispatcher: CeleryDispatcher, broker: redis.Redis
) -> None:
    with pytest.raises(PermanentError, match="it is not JSON"):
        dispatcher.send_credential(USER, {"credential_id": object()})
    assert _messages(broker, USER) == []


@pytest.mark.parametrize("kind", ["celery", "memory"])
@pytest.mark.parametrize(
    ("username", "order", "refusal"),
    [
        (USER, {"entry": "ce1", "action": "explode"}, "unknown job action 'explode'"),
        (USER, {"entry": "ce1"}, "unknown job action 'None'"),
        ("not a user", {"entry": "ce1", "action": "remove"}, "invalid local user name"),
    ],
)
def test_both_dispatchers_refuse_what_can_never_be_sent(
    kind: str,
    username: str,
    order: dict[str, Any],
    refusal: str,
    tmp_path: Path,
    redis_url: str,
    broker: redis.Redis,
) -> None:
    memory = MemoryDispatcher()
    chosen: TaskDispatcher = _dispatcher(tmp_path, redis_url) if kind == "celery" else memory
    with pytest.raises(PermanentError, match=refusal):
        chosen.send_job_action(username, order)
    assert memory.job_actions == {}
    assert broker.keys("*") == []
