"""Queue and task names of the factory, and the router that keeps user tasks on user queues.

Two kinds of queue (DESIGN §2):

``gwms.factory``
    The factory's own cycle work: find-work, monitor, advertise, the global ad, credentials
    and monitoring aggregation. Consumed by the factory worker(s).
``gwms.user.<username>``
    Work done *as* one local Unix user: submit, release, remove and credential storage for the
    frontend security classes mapped to that user. Consumed only by that user's worker, which
    runs as that user, so one frontend's files, credentials and grid jobs are out of reach of
    the others.

The task functions (``gwms_tasks/tasks``) are registered under the names of :class:`TaskName`.
Per-entry factory tasks take the keyword argument ``entry``; factory-wide ones take none.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from typing import Any, Final

from gwms_tasks.errors import PermanentError

FACTORY_QUEUE: Final = "gwms.factory"
USER_QUEUE_PREFIX: Final = "gwms.user."

# Same rule as the config's UserName: a POSIX user name of at most 32 characters.
_USERNAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")


class TaskName(enum.StrEnum):
    """The registered name of every factory task."""

    FIND_WORK = "gwms.find_work"
    MONITOR = "gwms.monitor"
    ADVERTISE = "gwms.advertise"
    ADVERTISE_GLOBAL = "gwms.advertise_global"
    CREDENTIALS = "gwms.credentials"
    AGGREGATE = "gwms.aggregate"
    SUBMIT = "gwms.submit"
    RELEASE = "gwms.release"
    REMOVE = "gwms.remove"
    STORE_CREDENTIAL = "gwms.store_credential"


FACTORY_TASKS: Final = frozenset(
    {
        TaskName.FIND_WORK,
        TaskName.MONITOR,
        TaskName.ADVERTISE,
        TaskName.ADVERTISE_GLOBAL,
        TaskName.CREDENTIALS,
        TaskName.AGGREGATE,
    }
)
"""Tasks run by the factory worker on :data:`FACTORY_QUEUE`."""

USER_TASKS: Final = frozenset(
    {TaskName.SUBMIT, TaskName.RELEASE, TaskName.REMOVE, TaskName.STORE_CREDENTIAL}
)
"""Tasks run as a local user, on that user's queue (see :func:`user_queue`)."""


def valid_username(username: str) -> bool:
    """True when ``username`` is a POSIX user name this factory accepts."""
    return bool(_USERNAME.fullmatch(username))


def user_queue(username: str) -> str:
    """The queue of the worker that runs as ``username``.

    Raises:
        PermanentError: ``username`` is not a valid POSIX user name.
    """
    if not valid_username(username):
        raise PermanentError(
            f"invalid local user name {username!r}: expected a letter or '_' first, "
            "then up to 31 letters, digits, '.', '_' or '-'"
        )
    return USER_QUEUE_PREFIX + username


def username_of_queue(queue: str) -> str | None:
    """The user a ``gwms.user.<username>`` queue belongs to, or None for any other queue."""
    if not queue.startswith(USER_QUEUE_PREFIX):
        return None
    username = queue.removeprefix(USER_QUEUE_PREFIX)
    return username if valid_username(username) else None


def route_task(
    name: str,
    args: object,
    kwargs: object,
    options: Mapping[str, Any],
    task: object = None,
    **extra: object,
) -> dict[str, str] | None:
    """Celery router (``task_routes``): factory tasks to the factory queue, user tasks checked.

    A user task must be sent with an explicit ``queue=user_queue(username)``: there is no
    sensible default for it, and falling back to the factory queue would run it with the
    factory's privileges instead of the user's. Other tasks are left to Celery's defaults.

    Args:
        name: the task name.
        args: positional arguments of the call (unused; part of Celery's router signature).
        kwargs: keyword arguments of the call (unused).
        options: the sending options; ``queue`` is a name or a kombu ``Queue``.
        task: the task object when known (unused).
        extra: further router arguments of future Celery versions (unused).

    Returns:
        The route, or None to let Celery decide.

    Raises:
        PermanentError: a user task sent without a user queue.
    """
    if name in FACTORY_TASKS:
        return {"queue": FACTORY_QUEUE}
    if name not in USER_TASKS:
        return None
    queue = options.get("queue")
    queue_name = str(getattr(queue, "name", queue or ""))
    if username_of_queue(queue_name) is None:
        raise PermanentError(
            f"task {name} must be sent to a user queue ({USER_QUEUE_PREFIX}<username>), "
            f"got {queue_name or 'no queue'!r}"
        )
    return {"queue": queue_name}
