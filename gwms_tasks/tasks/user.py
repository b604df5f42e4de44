"""Tasks of the user workers: submit, release, remove (and store credentials), as that user.

Each runs in the worker of the local user named by the order; the services refuse an order
for another user. Transient errors (backend unreachable, credential not yet received) retry
with exponential back-off; a submit that fails for good — refused, or out of retries — is
recorded as a failed submit for ``gwms submits failed`` / ``retry``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any, Final

from celery import Task, shared_task

from gwms_tasks.errors import PermanentError, TransientError
from gwms_tasks.queues import TaskName
from gwms_tasks.services.credential_store import store_credential as run_store_credential
from gwms_tasks.services.orders import CredentialOrder, JobActionOrder, SubmitOrder
from gwms_tasks.services.submit import execute_job_action, execute_submit, record_failed_submit
from gwms_tasks.tasks._context import user_deps

log = logging.getLogger(__name__)

MAX_RETRIES: Final = 6
BACKOFF_BASE: Final = 5.0
BACKOFF_MAX: Final = 300.0


def backoff(retries: int) -> float:
    """Seconds before retry number ``retries + 1``: 5, 10, 20, ... at most 5 minutes."""
    return float(min(BACKOFF_MAX, BACKOFF_BASE * 2**retries))


@shared_task(bind=True, name=TaskName.SUBMIT, max_retries=MAX_RETRIES)
def submit(self: Task[Any, Any], order: dict[str, Any]) -> dict[str, Any]:
    """Submit the glideins of a SubmitOrder that do not exist yet (idempotent)."""
    deps = user_deps(self.app)
    parsed = SubmitOrder.from_json(order)
    try:
        return asdict(execute_submit(deps, parsed))
    except TransientError as exc:
        if self.request.retries < MAX_RETRIES:
            log.warning("submit %s: %s; retrying", parsed.tags.submit_key, exc)
            raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc
        reason = f"gave up after {MAX_RETRIES} retries: {exc}"
    except PermanentError as exc:
        reason = str(exc)
    log.error("submit %s failed: %s", parsed.tags.submit_key, reason)
    record_failed_submit(deps, parsed, reason, failed_id=parsed.tags.submit_key)
    return {"submit_key": parsed.tags.submit_key, "status": "failed", "reason": reason}


def _job_action(task: Task[Any, Any], order: dict[str, Any]) -> dict[str, Any]:
    parsed = JobActionOrder.from_json(order)
    try:
        done = execute_job_action(user_deps(task.app), parsed)
    except TransientError as exc:
        # The next find-work decides again from a fresh query: no need to insist for long.
        raise task.retry(exc=exc, countdown=backoff(task.request.retries)) from exc
    return {"entry": parsed.entry, "action": parsed.action.value, "count": done}


@shared_task(bind=True, name=TaskName.REMOVE, max_retries=3)
def remove(self: Task[Any, Any], order: dict[str, Any]) -> dict[str, Any]:
    """Remove (or force-remove) glideins."""
    return _job_action(self, order)


@shared_task(bind=True, name=TaskName.RELEASE, max_retries=3)
def release(self: Task[Any, Any], order: dict[str, Any]) -> dict[str, Any]:
    """Release held glideins."""
    return _job_action(self, order)


@shared_task(bind=True, name=TaskName.STORE_CREDENTIAL, max_retries=3)
def store_credential(self: Task[Any, Any], order: dict[str, Any]) -> dict[str, Any]:
    """Open a sealed credential and write it 0600 in this user's credential directory."""
    parsed = CredentialOrder.from_json(order)
    outcome = run_store_credential(user_deps(self.app), parsed)
    return {"credential_id": parsed.credential_id, "status": outcome}
