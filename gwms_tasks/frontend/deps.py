"""What a frontend cycle runs against: its config, the dashboard, the explanation store, the
job sources, a clock and a source of symmetric keys. Tests build it from the in-memory twins;
:func:`build_deps` builds it from a config file's values with the real adapters.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis

from gwms_tasks.adapters.redis_dashboard import RedisDashboard
from gwms_tasks.core.crypto import SymKey
from gwms_tasks.errors import PermanentError
from gwms_tasks.frontend.core_config import CelerySource, FrontendConfig
from gwms_tasks.frontend.core_jobs import JobSource
from gwms_tasks.frontend.core_staging import FrontendStaging, frontend_staging
from gwms_tasks.frontend.files import resolve, write_staging
from gwms_tasks.frontend.source_celery import CeleryQueueJobSource
from gwms_tasks.frontend.source_schedd import ScheddJobSource, locate_schedd
from gwms_tasks.frontend.state import ExplanationStore, RedisExplanationStore
from gwms_tasks.keys import Keys
from gwms_tasks.ports import Dashboard


@dataclass
class FrontendDeps:
    """The ports of one frontend process.

    Attributes:
        config: the validated config.
        base_dir: the config file's directory (relative credential and stage paths).
        dashboard: the dashboard, as the frontend's authenticated writer.
        explanations: where each group's last cycle is kept.
        job_source: the job source of a group (built on first use, then reused).
        clock: epoch seconds.
        new_sym: a fresh symmetric key (one per factory instance and cycle).
        closers: what :meth:`close` releases.
    """

    config: FrontendConfig
    base_dir: Path
    dashboard: Dashboard
    explanations: ExplanationStore
    job_source: Callable[[str], JobSource]
    clock: Callable[[], float] = time.time
    new_sym: Callable[[], SymKey] = SymKey.generate
    closers: list[Callable[[], None]] = field(default_factory=list)
    _staged: dict[str, FrontendStaging] = field(default_factory=dict, init=False, repr=False)

    def staging(self, group: str) -> FrontendStaging:
        """The staging area of ``group``, built and written to the stage dir once per process.

        Its content follows from the config alone, which a process never changes, so later
        cycles reuse it instead of building and re-reading the area every time.

        Raises:
            PermanentError: the stage dir cannot be written (the next call tries again).
        """
        staged = self._staged.get(group)
        if staged is None:
            web = self.config.web
            staged = frontend_staging(web.url, group, web.monitoring_url)
            write_staging(resolve(web.stage_dir, self.base_dir), staged)
            self._staged[group] = staged
        return staged

    def close(self) -> None:
        """Release connections (idempotent)."""
        while self.closers:
            self.closers.pop()()


def build_deps(config: FrontendConfig, base_dir: Path) -> FrontendDeps:
    """The real adapters: the Redis dashboard as the frontend's ACL user, real job sources."""
    client = redis.Redis.from_url(config.dashboard.url)
    keys = Keys(config.dashboard.key_prefix)
    writer = config.frontend.identity
    dashboard = RedisDashboard(client, keys, writer, lifetime=config.dashboard.ad_lifetime)
    sources: dict[str, JobSource] = {}
    brokers: list[redis.Redis] = []

    def job_source(group: str) -> JobSource:
        if group not in sources:
            sources[group] = _make_source(config, group, brokers)
        return sources[group]

    def close() -> None:
        for broker in brokers:
            broker.close()
        client.close()

    return FrontendDeps(
        config=config,
        base_dir=base_dir,
        dashboard=dashboard,
        explanations=RedisExplanationStore(client, keys, writer),
        job_source=job_source,
        closers=[close],
    )


def _make_source(config: FrontendConfig, group: str, brokers: list[redis.Redis]) -> JobSource:
    group_config = config.groups.get(group)
    if group_config is None:
        known = ", ".join(config.groups)
        raise PermanentError(f"no group {group!r} in the frontend config (groups: {known})")
    source = group_config.job_source
    if isinstance(source, CelerySource):
        broker = redis.Redis.from_url(source.broker_url)
        brokers.append(broker)
        return CeleryQueueJobSource(broker, source)
    return ScheddJobSource(locate_schedd(source), source)
