"""The in-memory twin of the job sources: jobs a test (or a simulation) puts there by hand."""

from __future__ import annotations

from collections.abc import Mapping

from gwms_tasks.core.classad_text import AdValue
from gwms_tasks.errors import TransientError
from gwms_tasks.frontend.core_jobs import JobSnapshot, group_jobs


class MemoryJobSource:
    """Idle jobs with attributes and a running count, held in memory."""

    def __init__(self) -> None:
        self._idle: list[dict[str, AdValue]] = []
        self._running = 0
        self._failure: str | None = None

    def add_idle(self, attrs: Mapping[str, AdValue], count: int = 1) -> None:
        """Queue ``count`` idle jobs with ``attrs``."""
        self._idle.extend(dict(attrs) for _ in range(count))

    def start(self, count: int = 1) -> None:
        """Start the ``count`` oldest idle jobs."""
        if count > len(self._idle):
            raise ValueError(f"cannot start {count} jobs: only {len(self._idle)} are idle")
        del self._idle[:count]
        self._running += count

    def finish(self, count: int = 1) -> None:
        """End ``count`` running jobs."""
        if count > self._running:
            raise ValueError(f"cannot finish {count} jobs: only {self._running} are running")
        self._running -= count

    def fail(self, reason: str | None) -> None:
        """Make every snapshot fail with ``reason`` (None: work again)."""
        self._failure = reason

    def snapshot(self) -> JobSnapshot:
        if self._failure is not None:
            raise TransientError(f"memory job source: {self._failure}")
        return JobSnapshot(group_jobs(self._idle), self._running)
