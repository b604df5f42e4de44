"""The factory's Celery application, built from the validated factory config.

Every setting here follows from a rule of DESIGN §5 or a broker pitfall measured in our tests
(``tests/integration/test_celery_app.py``):

- JSON only, in every direction: a pickle message is refused by the worker, never executed.
- Late acknowledgement, reject on worker lost, prefetch 1: a pool process killed mid-task
  loses nothing, the message goes straight back to the queue (tasks are idempotent; the submit
  ledger makes sure a redelivered submit never submits twice). If the whole worker dies, its
  unacknowledged messages come back after the broker's visibility timeout (Redis) or at once
  when the connection drops (RabbitMQ).
- The Redis broker redelivers any message left unacknowledged longer than the visibility
  timeout, so it is kept well above the task time limit (see :class:`CeleryTimings`). Only
  ``broker_transport_options`` carries it: kombu 5.7 reads it there, and Celery 5.7 reads no
  top-level ``visibility_timeout`` setting; ``result_backend_transport_options`` would only
  matter with a Redis result backend, and this app has none (results live in the state store).
- No result backend: tasks report through the state store (decisions, ledger, failed submits),
  and Flower shows task outcomes from events.
- RedBeat keeps the schedule in the state Redis under the gwms key prefix, with a short lock so
  a standby beat takes over quickly (``gwms_tasks/schedule.py`` writes the entries).

The ``celery`` command line gets the app from ``GWMS_CONFIG``:
``GWMS_CONFIG=/etc/gwms-tasks/factory.yaml celery -A gwms_tasks.celery_app:app beat``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from celery import Celery

from gwms_tasks.config_file import read_config
from gwms_tasks.core.config import FactoryConfig
from gwms_tasks.errors import ConfigError, PermanentError
from gwms_tasks.keys import Keys
from gwms_tasks.queues import FACTORY_QUEUE, route_task

CONFIG_ENV: Final = "GWMS_CONFIG"
"""Environment variable naming the factory config file, for the ``celery`` command line."""

DEFAULT_INCLUDE: Final = ("gwms_tasks.tasks",)
"""Modules a worker imports to register the factory's tasks."""

APP_NAME: Final = "gwms"

MAX_TASKS_PER_CHILD: Final = 500
"""Recycle a pool process after this many tasks: prefork children keep their peak memory."""


@dataclass(frozen=True, slots=True)
class CeleryTimings:
    """Time bounds of the app, derived from the factory's ``loop_delay`` (seconds).

    Attributes:
        task_time_limit: a task still running after this is killed (and not redelivered).
            Five loops, at least 10 minutes: a cycle task that takes longer is broken.
        visibility_timeout: the Redis broker redelivers an unacknowledged message after this.
            Twice the time limit, at least an hour, so a running task is never redelivered.
        beat_lock_timeout: RedBeat's HA lock; a standby beat takes over after this. Three
            loops, within [30 s, 120 s]: failover within about two cycles.
        beat_max_loop_interval: the longest beat sleep, which is also how often the lock is
            extended and how soon an entry added by a reload is seen. At most a quarter of the
            lock timeout (so a slow tick never loses the lock) and at most one loop.
        soft_shutdown_timeout: on a cold shutdown (systemd's SIGTERM remapped to SIGQUIT), the
            worker lets running tasks finish this long, then requeues the rest.
    """

    task_time_limit: float
    visibility_timeout: float
    beat_lock_timeout: float
    beat_max_loop_interval: float
    soft_shutdown_timeout: float

    @classmethod
    def for_loop_delay(cls, loop_delay: float) -> CeleryTimings:
        """The timings of a factory whose cycle is ``loop_delay`` seconds."""
        time_limit = max(600.0, 5 * loop_delay)
        lock_timeout = min(120.0, max(30.0, 3 * loop_delay))
        return cls(
            task_time_limit=time_limit,
            visibility_timeout=max(3600.0, 2 * time_limit),
            beat_lock_timeout=lock_timeout,
            beat_max_loop_interval=min(loop_delay, lock_timeout / 4),
            soft_shutdown_timeout=30.0,
        )


def celery_settings(config: FactoryConfig, keys: Keys) -> dict[str, object]:
    """Every Celery, kombu and RedBeat setting of the factory app (see the module docstring)."""
    timings = CeleryTimings.for_loop_delay(config.factory.loop_delay)
    return {
        **message_settings(config.redis.broker_url, timings, FACTORY_QUEUE, (route_task,)),
        **worker_settings(timings),
        **_beat_settings(config, keys, timings),
    }


def message_settings(
    broker_url: str, timings: CeleryTimings, queue: str, routes: object
) -> dict[str, object]:
    """Broker, serialisation and routing settings (shared with the frontend's app).

    Args:
        broker_url: the broker.
        timings: the app's time bounds (the broker's visibility timeout).
        queue: the default queue of tasks sent without one.
        routes: Celery's ``task_routes`` value.
    """
    return {
        "broker_url": broker_url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {"visibility_timeout": int(timings.visibility_timeout)},
        "task_serializer": "json",
        "result_serializer": "json",
        "event_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_ignore_result": True,
        "result_backend": None,
        # No backend, so nothing to clean: keeps beat from scheduling celery.backend_cleanup.
        "result_expires": None,
        "task_default_queue": queue,
        "task_create_missing_queues": True,
        "task_routes": routes,
        "task_send_sent_event": True,
        "enable_utc": True,
        "timezone": "UTC",
    }


def worker_settings(timings: CeleryTimings) -> dict[str, object]:
    """Late acknowledgement, prefetch 1, task events and time limits (shared with the frontend)."""
    return {
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # A lost broker connection redelivers running late-ack tasks to other workers; cancel
        # ours rather than run the same task twice in parallel.
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "worker_soft_shutdown_timeout": timings.soft_shutdown_timeout,
        "worker_max_tasks_per_child": MAX_TASKS_PER_CHILD,
        "worker_send_task_events": True,
        "task_time_limit": timings.task_time_limit,
    }


def _beat_settings(config: FactoryConfig, keys: Keys, timings: CeleryTimings) -> dict[str, object]:
    return {
        "beat_scheduler": "redbeat.RedBeatScheduler",
        "beat_max_loop_interval": timings.beat_max_loop_interval,
        "redbeat_redis_url": config.redis.state_url,
        "redbeat_key_prefix": keys.redbeat_prefix(),
        "redbeat_lock_timeout": int(timings.beat_lock_timeout),
        # Set explicitly: RedBeat 2.4 otherwise falls back to the broker's transport options.
        # Retry a lost Redis for as long as the lock would still be ours.
        "redbeat_redis_options": {"retry_period": int(timings.beat_lock_timeout)},
    }


def make_celery(
    config: FactoryConfig,
    *,
    include: Sequence[str] = DEFAULT_INCLUDE,
    keys: Keys | None = None,
) -> Celery:
    """The factory's Celery app for ``config``.

    Args:
        config: the validated factory config (broker, state Redis, loop delay).
        include: modules a worker imports to register its tasks.
        keys: Redis key names (RedBeat's prefix); the default ``gwms`` prefix if None.

    Returns:
        A configured, not yet connected, Celery app.
    """
    app = Celery(APP_NAME, include=list(include))
    app.conf.update(celery_settings(config, keys or Keys()))
    app.gwms_config = config
    return app


def factory_config_of(app: Celery) -> FactoryConfig:
    """The config an app was built from (tasks reach it as ``self.app``).

    Raises:
        PermanentError: the app was not built by :func:`make_celery`.
    """
    config = getattr(app, "gwms_config", None)
    if not isinstance(config, FactoryConfig):
        raise PermanentError(f"Celery app {app.main!r} was not built by make_celery()")
    return config


def app_from_env(environ: Mapping[str, str] | None = None) -> Celery:
    """The app of the config file named by ``GWMS_CONFIG`` (for the ``celery`` command line).

    Raises:
        ConfigError: the variable is unset, or the file is unreadable or invalid.
    """
    env = os.environ if environ is None else environ
    path = env.get(CONFIG_ENV, "").strip()
    if not path:
        raise ConfigError(
            CONFIG_ENV,
            [
                f"not set: expected the path of the factory config file, e.g. {CONFIG_ENV}="
                "/etc/gwms-tasks/factory.yaml"
            ],
        )
    return make_celery(read_config(Path(path)))


def __getattr__(name: str) -> Celery:
    """``gwms_tasks.celery_app:app``, built on first use (``celery -A`` takes no call)."""
    if name == "app":
        return app_from_env()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
