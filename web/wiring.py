"""Connecting the web app to a factory's real ports (used by ``gwms web``).

:func:`runtime_sources` takes the process's :class:`~gwms_tasks.runtime.Runtime` (which owns
every real adapter) and a dispatcher for the retry service, and returns the sources provider
that :func:`web.app.create_app` calls on each request: so a config accepted by ``gwms reload``
shows on the next page load, without restarting the server.
"""

from __future__ import annotations

import logging
from functools import partial

import redis

from gwms_tasks.core.config import DashboardKind, FactoryConfig
from gwms_tasks.errors import GwmsError
from gwms_tasks.ports import JsonDict, TaskDispatcher
from gwms_tasks.runtime import Runtime
from gwms_tasks.services.monitoring_view import MonitoringSources
from gwms_tasks.services.retry import retry_failed
from web.deps import SourcesProvider

log = logging.getLogger(__name__)


def runtime_sources(runtime: Runtime, dispatcher: TaskDispatcher | None) -> SourcesProvider:
    """The monitoring sources of a running factory.

    Args:
        runtime: the process's adapters (state Redis, dashboard, grid backends, downtimes).
        dispatcher: sends retried submit orders to the user queues; None disables retries.

    Returns:
        A provider of fresh sources for each request.
    """

    def provide() -> MonitoringSources:
        config = _current_config(runtime)
        state = runtime.state
        return MonitoringSources(
            config=config,
            state=state,
            completed=state.completed,
            counters=state.counters,
            credentials=runtime.credential_index(),
            downtimes=runtime.downtimes,
            clock=runtime.clock,
            dashboard=runtime.dashboard(),
            retry=None if dispatcher is None else partial(_retry, runtime, dispatcher),
            glideins=lambda entry: runtime.backend_for(entry).query(),
            dashboard_identity=_own_identity(config),
        )

    return provide


def _retry(runtime: Runtime, dispatcher: TaskDispatcher, failed_id: str) -> JsonDict:
    return retry_failed(runtime.factory_deps(dispatcher), failed_id).to_json()


def _current_config(runtime: Runtime) -> FactoryConfig:
    """The config after a reload check; the running one when the check cannot be made."""
    try:
        return runtime.refresh()
    except (redis.RedisError, GwmsError) as exc:
        log.warning("cannot check for a reloaded config, keeping the running one: %s", exc)
        return runtime.config


def _own_identity(config: FactoryConfig) -> str | None:
    """The identity the factory's own ads carry: its writer name on a Redis dashboard."""
    return config.factory.name if config.dashboard.kind == DashboardKind.REDIS else None
