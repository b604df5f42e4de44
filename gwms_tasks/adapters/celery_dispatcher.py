"""TaskDispatcher over Celery: orders go to the queue of the local user that must run them.

Every order is sent by task name (``send_task``), so the factory never imports the user-side
code paths, and with an explicit ``queue=gwms.user.<username>`` (the router refuses a user task
without one). Orders are JSON dicts without secrets in clear (see services/orders.py).

A submit order is sent with ``expires`` at the end of its lifetime
(:func:`~gwms_tasks.services.orders.order_lifetime` of the app's loop delay, counted from its
``queued_at``): a worker that receives it later discards it, and the lifetime is shorter than
the broker's visibility timeout, so a redelivered message has always expired.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import redis
from celery import Celery
from kombu.exceptions import EncodeError, OperationalError

from gwms_tasks.celery_app import factory_config_of
from gwms_tasks.core.sanitize import JobAction
from gwms_tasks.errors import PermanentError, TransientError
from gwms_tasks.ports import JsonDict
from gwms_tasks.queues import TaskName, user_queue
from gwms_tasks.services.orders import order_lifetime

_ACTION_TASKS = {
    JobAction.RELEASE.value: TaskName.RELEASE,
    JobAction.REMOVE.value: TaskName.REMOVE,
    JobAction.REMOVE_FORCEX.value: TaskName.REMOVE,
}


def action_task(order: JsonDict) -> TaskName:
    """The task that carries out a job action order.

    Raises:
        PermanentError: the order names no known action.
    """
    action = str(order.get("action"))
    task = _ACTION_TASKS.get(action)
    if task is None:
        known = ", ".join(sorted(_ACTION_TASKS))
        raise PermanentError(f"unknown job action {action!r} (known: {known})")
    return task


@contextmanager
def broker_errors(what: str) -> Iterator[None]:
    """Translate what kombu and the Redis transport raise into the project's errors."""
    try:
        yield
    except EncodeError as exc:
        raise PermanentError(f"cannot send {what}: it is not JSON ({exc})") from exc
    except (OperationalError, OSError, redis.exceptions.RedisError) as exc:
        raise TransientError(f"the broker did not take {what}: {exc}") from exc


class CeleryDispatcher:
    """Send orders through a Celery app's broker (an app built by ``make_celery``)."""

    def __init__(self, app: Celery) -> None:
        self._app = app
        self._lifetime = order_lifetime(factory_config_of(app).factory.loop_delay)

    def send_submit(self, username: str, order: JsonDict) -> None:
        try:
            expires = datetime.fromtimestamp(float(order["queued_at"]) + self._lifetime, UTC)
        except (KeyError, TypeError, ValueError, OverflowError, OSError) as exc:
            raise PermanentError(f"a submit order without a valid queued_at: {exc!r}") from exc
        self._send(TaskName.SUBMIT, username, order, expires)

    def send_job_action(self, username: str, order: JsonDict) -> None:
        self._send(action_task(order), username, order)

    def send_credential(self, username: str, order: JsonDict) -> None:
        self._send(TaskName.STORE_CREDENTIAL, username, order)

    def _send(
        self, task: TaskName, username: str, order: JsonDict, expires: datetime | None = None
    ) -> None:
        queue = user_queue(username)
        with broker_errors(f"the {task} order for user {username}"):
            self._app.send_task(str(task), kwargs={"order": order}, queue=queue, expires=expires)
