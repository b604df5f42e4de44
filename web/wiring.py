"""Connecting the web app to a factory's real ports (used by ``gwms web``).

:func:`runtime_sources` takes the process's :class:`~gwms_tasks.runtime.Runtime` (which owns
every real adapter) and a dispatcher for the retry service, and returns the sources provider
that :func:`web.app.create_app` calls on each request: so a config accepted by ``gwms reload``
shows on the next page load, without restarting the server.

The live glideins of an entry come from its grid backend (a schedd query for Condor-G), and any
reader may ask for them on every page refresh: :class:`GlideinCache` answers from the last
query for :func:`glidein_ttl` seconds, so the backends see one query per entry at most that often.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Final

import redis

from gwms_tasks.core.config import DashboardKind, FactoryConfig
from gwms_tasks.core.model import Glidein
from gwms_tasks.errors import GwmsError
from gwms_tasks.ports import JsonDict, TaskDispatcher
from gwms_tasks.runtime import Runtime
from gwms_tasks.services.monitoring_view import MonitoringSources
from gwms_tasks.services.retry import retry_failed
from web.deps import SourcesProvider

log = logging.getLogger(__name__)

GLIDEIN_TTL_CAP: Final = 30.0
"""Live glideins are queried again after ``loop_delay`` seconds, or this many if less."""


def glidein_ttl(config: FactoryConfig) -> float:
    """How long the live glideins of an entry are served from the last query."""
    return min(config.factory.loop_delay, GLIDEIN_TTL_CAP)


class GlideinCache:
    """The live glideins of each entry, from at most one backend query per entry and ``ttl``.

    A failed query (a GwmsError) is kept as long as a result: a backend that is down is not
    asked again on every refresh either. Concurrent readers of one entry wait for one query.

    Args:
        query: the live glideins of an entry, from its backend.
        clock: monotonic seconds.
    """

    def __init__(
        self, query: Callable[[str], list[Glidein]], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._query = query
        self._clock = clock
        self._lock = threading.Lock()
        self._entry_locks: dict[str, threading.Lock] = {}
        self._answers: dict[str, tuple[float, list[Glidein] | GwmsError]] = {}

    def glideins(self, entry: str, ttl: float) -> list[Glidein]:
        """The glideins of ``entry`` from a query at most ``ttl`` seconds old.

        Raises:
            GwmsError: the query failed (now, or within ``ttl``).
        """
        with self._lock:
            entry_lock = self._entry_locks.setdefault(entry, threading.Lock())
        with entry_lock:
            answer = self._answers.get(entry)
            if answer is None or self._clock() - answer[0] >= ttl:
                answer = (self._clock(), self._ask(entry))
                self._answers[entry] = answer
        found = answer[1]
        if isinstance(found, GwmsError):
            raise found.with_traceback(None)  # the same error again, without stacking tracebacks
        return list(found)

    def _ask(self, entry: str) -> list[Glidein] | GwmsError:
        try:
            return self._query(entry)
        except GwmsError as exc:
            return exc


def runtime_sources(runtime: Runtime, dispatcher: TaskDispatcher | None) -> SourcesProvider:
    """The monitoring sources of a running factory.

    Args:
        runtime: the process's adapters (state Redis, dashboard, grid backends, downtimes).
        dispatcher: sends retried submit orders to the user queues; None disables retries.

    Returns:
        A provider of fresh sources for each request (the live glideins come through one
        :class:`GlideinCache`).
    """
    cache = GlideinCache(lambda entry: runtime.backend_for(entry).query())

    def provide() -> MonitoringSources:
        config = _current_config(runtime)
        state = runtime.state
        ttl = glidein_ttl(config)
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
            glideins=lambda entry: cache.glideins(entry, ttl),
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
