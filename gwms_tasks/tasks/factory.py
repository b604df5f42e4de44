"""Tasks of the factory worker: one cycle step each, per entry or factory-wide.

They only assemble the ports (gwms_tasks/tasks/_context.py) and call a service; what they
return is a small JSON summary that Flower shows. An entry that a reload removed or disabled is
skipped with a note (beat may still hold a message for it).
"""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Any

from celery import Task, shared_task

from gwms_tasks.queues import TaskName
from gwms_tasks.services.find_work import find_work as run_find_work
from gwms_tasks.tasks._context import factory_deps


def _skipped(entry: str) -> dict[str, Any]:
    return {"entry": entry, "status": "skipped", "detail": "entry not enabled in the config"}


@shared_task(bind=True, name=TaskName.FIND_WORK)
def find_work(self: Task[Any, Any], entry: str) -> dict[str, Any]:
    """Validate the entry's requests, decide, send orders to the user queues.

    The task id is the run id: a redelivered find-work makes the same submit keys, so its
    orders are recognised as already sent.
    """
    deps = factory_deps(self.app)
    if entry not in deps.config.enabled_entries():
        return _skipped(entry)
    run_id = self.request.id or uuid.uuid4().hex
    return asdict(run_find_work(deps, entry, run_id))
