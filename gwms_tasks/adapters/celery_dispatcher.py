"""TaskDispatcher over Celery: orders go to the queue of the local user that must run them.

Every order is sent by task name (``send_task``), so the factory never imports the user-side
code paths, and with an explicit ``queue=gwms.user.<username>`` (the router refuses a user task
without one). Orders are JSON dicts without secrets in clear (see services/orders.py).
"""

from __future__ import annotations

from celery import Celery

from gwms_tasks.core.sanitize import JobAction
from gwms_tasks.ports import JsonDict
from gwms_tasks.queues import TaskName, user_queue

_ACTION_TASKS = {
    JobAction.RELEASE.value: TaskName.RELEASE,
    JobAction.REMOVE.value: TaskName.REMOVE,
    JobAction.REMOVE_FORCEX.value: TaskName.REMOVE,
}


class CeleryDispatcher:
    """Send orders through a Celery app's broker."""

    def __init__(self, app: Celery) -> None:
        self._app = app

    def send_submit(self, username: str, order: JsonDict) -> None:
        self._send(TaskName.SUBMIT, username, order)

    def send_job_action(self, username: str, order: JsonDict) -> None:
        self._send(_ACTION_TASKS[str(order["action"])], username, order)

    def send_credential(self, username: str, order: JsonDict) -> None:
        self._send(TaskName.STORE_CREDENTIAL, username, order)

    def _send(self, task: TaskName, username: str, order: JsonDict) -> None:
        self._app.send_task(str(task), kwargs={"order": order}, queue=user_queue(username))
