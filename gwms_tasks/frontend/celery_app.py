"""The frontend's Celery app: one periodic ``gwms.frontend.cycle`` task per group.

Same conventions as the factory's app (:mod:`gwms_tasks.celery_app`): JSON only, late
acknowledgement with reject-on-worker-lost, prefetch 1, no result backend (the cycle stores its
explanation in the dashboard Redis), task events on for Flower. The tasks go to the frontend's
own queue (``celery.queue``, ``gwms.frontend.<name>`` by default), so the frontend can share a
broker with the VO or the factory without sharing their queues.

Beat: the schedule is the config (every enabled group every ``loop_delay`` seconds), so it needs
no store: ``celery.beat:Scheduler`` keeps it in memory. ``gwms frontend run`` starts the worker
with an embedded beat (``-B``), which suits one machine; more workers on other machines run
``gwms frontend run --no-beat`` against the same broker, and exactly one process of the
frontend may run a beat, or cycles would be sent twice. Each item ``expires`` after 90% of its
period, so a stopped worker finds no backlog of stale cycles when it comes back. A cycle that
fails is not retried: the next one, ``loop_delay`` later, is the retry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from celery import Celery, Task

from gwms_tasks.celery_app import CeleryTimings, message_settings, worker_settings
from gwms_tasks.errors import PermanentError, TransientError
from gwms_tasks.frontend.core_config import FrontendConfig
from gwms_tasks.frontend.cycle import run_cycle
from gwms_tasks.frontend.deps import FrontendDeps, build_deps
from gwms_tasks.frontend.files import read_frontend_config
from gwms_tasks.schedule import EXPIRES_FRACTION
from gwms_tasks.worker_start import worker_argv as factory_worker_argv

CYCLE_TASK: Final = "gwms.frontend.cycle"
APP_NAME: Final = "gwms_frontend"
BEAT_SCHEDULER: Final = "celery.beat:Scheduler"

log = logging.getLogger(__name__)


@dataclass
class FrontendRuntime:
    """What the tasks of an app need: the config, and the ports once a task has built them."""

    config: FrontendConfig
    base_dir: Path
    deps: FrontendDeps | None = None

    def ports(self) -> FrontendDeps:
        """The ports, built on first use in each worker process (after the pool forked)."""
        if self.deps is None:
            self.deps = build_deps(self.config, self.base_dir)
        return self.deps


def beat_schedule(config: FrontendConfig) -> dict[str, dict[str, Any]]:
    """One schedule item per enabled group: ``frontend_cycle:<group>`` every loop."""
    period = config.frontend.loop_delay
    return {
        f"frontend_cycle:{group}": {
            "task": CYCLE_TASK,
            "schedule": period,
            "kwargs": {"group": group},
            "options": {"queue": config.queue, "expires": EXPIRES_FRACTION * period},
        }
        for group in config.enabled_groups()
    }


def frontend_settings(config: FrontendConfig) -> dict[str, object]:
    """Every Celery setting of the frontend app (see the module docstring).

    Messages and workers are set up as the factory's (timings from ``loop_delay`` alike); only
    the queue, the routes and the in-memory beat differ.
    """
    timings = CeleryTimings.for_loop_delay(config.frontend.loop_delay)
    routes = {CYCLE_TASK: {"queue": config.queue}}
    return {
        **message_settings(config.celery.broker_url, timings, config.queue, routes),
        **worker_settings(timings),
        "beat_scheduler": BEAT_SCHEDULER,
        "beat_schedule": beat_schedule(config),
        "beat_max_loop_interval": min(config.frontend.loop_delay, 60.0),
    }


def cycle_task(task: Task, group: str) -> dict[str, object]:
    """``gwms.frontend.cycle``: one cycle of ``group``; returns its report (shown in Flower)."""
    runtime = runtime_of(task.app)
    try:
        return run_cycle(runtime.ports(), group).to_dict()
    except TransientError as exc:
        log.warning("frontend cycle of group %s skipped, the next one retries: %s", group, exc)
        return {"group": group, "status": "skipped", "detail": str(exc)}


def make_frontend_celery(config: FrontendConfig, base_dir: Path) -> Celery:
    """The frontend's Celery app for ``config`` (``base_dir``: the config file's directory)."""
    app = Celery(APP_NAME)
    app.conf.update(frontend_settings(config))
    app.gwms_frontend = FrontendRuntime(config, base_dir)
    app.task(name=CYCLE_TASK, bind=True)(cycle_task)
    return app


def runtime_of(app: Celery) -> FrontendRuntime:
    """The runtime an app was built with.

    Raises:
        PermanentError: the app was not built by :func:`make_frontend_celery`.
    """
    runtime = getattr(app, "gwms_frontend", None)
    if not isinstance(runtime, FrontendRuntime):
        raise PermanentError(f"Celery app {app.main!r} was not built by make_frontend_celery()")
    return runtime


def worker_argv(config: FrontendConfig, loglevel: str, concurrency: int, beat: bool) -> list[str]:
    """``celery worker`` arguments of the frontend (with an embedded beat when ``beat``).

    Raises:
        PermanentError: ``concurrency`` is below 1.
    """
    hostname = f"frontend-{config.frontend.name}@%h"
    argv = factory_worker_argv(config.queue, hostname, concurrency, loglevel)
    if beat:
        argv += ["-B", "--scheduler", BEAT_SCHEDULER]
    return argv


def start_frontend(
    config_path: Path, loglevel: str, concurrency: int = 1, beat: bool = True
) -> int:
    """Run the frontend's worker (and beat); block until it stops; return its exit code.

    Raises:
        ConfigError: the config file is unreadable or invalid.
    """
    config = read_frontend_config(config_path)
    app = make_frontend_celery(config, config_path.resolve().parent)
    code = app.start(argv=worker_argv(config, loglevel, concurrency, beat))
    return int(code or 0)
