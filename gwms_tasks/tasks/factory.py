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
from gwms_tasks.services.advertise import advertise_entry, advertise_global
from gwms_tasks.services.aggregate import aggregate as run_aggregate
from gwms_tasks.services.credentials import process_global_ads
from gwms_tasks.services.find_work import find_work as run_find_work
from gwms_tasks.services.monitor import monitor_entry
from gwms_tasks.tasks._context import START_TIME, factory_deps, runtime_of


def _skipped(entry: str) -> dict[str, Any]:
    return {"entry": entry, "status": "skipped", "detail": "entry not enabled in the config"}


BUSY_RETRIES = 5
BUSY_RETRY_SECONDS = 1.0


@shared_task(bind=True, name=TaskName.FIND_WORK, max_retries=BUSY_RETRIES)
def find_work(self: Task[Any, Any], entry: str, triggered: bool = False) -> dict[str, Any]:
    """Validate the entry's requests, decide, send orders to the user queues.

    The task id is the run id: a redelivered find-work makes the same submit keys, so its
    orders are recognised as already sent. A find-work triggered by a changed request that
    finds another one running (which may have read the ads before the change) runs again a
    second later; a periodic one just leaves it to the running one.
    """
    deps = factory_deps(self.app)
    if entry not in deps.config.enabled_entries():
        return _skipped(entry)
    run_id = self.request.id or uuid.uuid4().hex
    result = run_find_work(deps, entry, run_id)
    if result.status == "busy" and triggered and self.request.retries < BUSY_RETRIES:
        raise self.retry(countdown=BUSY_RETRY_SECONDS)
    return asdict(result)


@shared_task(bind=True, name=TaskName.MONITOR)
def monitor(self: Task[Any, Any], entry: str) -> dict[str, Any]:
    """Query the entry's glideins: snapshot, time series, completed glideins and their logs."""
    deps = factory_deps(self.app)
    if entry not in deps.config.enabled_entries():
        return _skipped(entry)
    return monitor_entry(deps, entry).to_dict()


@shared_task(bind=True, name=TaskName.ADVERTISE)
def advertise(self: Task[Any, Any], entry: str) -> dict[str, Any]:
    """Publish (or withdraw) the entry's glidefactory and glidefactoryclient ads."""
    return advertise_entry(factory_deps(self.app), entry, daemon_start_time=START_TIME)


@shared_task(bind=True, name=TaskName.ADVERTISE_GLOBAL)
def advertise_global_ad(self: Task[Any, Any]) -> dict[str, Any]:
    """Publish the glidefactoryglobal ad (the factory key) and withdraw removed entries."""
    return advertise_global(factory_deps(self.app), daemon_start_time=START_TIME)


@shared_task(bind=True, name=TaskName.CREDENTIALS)
def credentials(self: Task[Any, Any]) -> dict[str, Any]:
    """Forward the credentials of glideclientglobal ads, sealed, to the user workers."""
    return process_global_ads(factory_deps(self.app), runtime_of(self.app).credential_index())


@shared_task(bind=True, name=TaskName.AGGREGATE)
def aggregate(self: Task[Any, Any]) -> dict[str, Any]:
    """Factory-wide monitoring totals (the ``_factory`` time series)."""
    return dict(run_aggregate(factory_deps(self.app)))
