"""The frontend's view of its users' jobs, and the JobSource port that provides it.

A job source says how many jobs wait (idle) and how many run, and gives the attributes of the
waiting ones for the job-to-entry match expression. Jobs with the same attributes are one
:class:`JobGroup`: the match is evaluated once per group, however many jobs it holds (what
glideinWMS calls job clustering by signature).

Adapters: ``source_schedd`` (HTCondor schedd, htcondor2 bindings), ``source_celery`` (Celery
tasks in a Redis broker) and ``source_memory`` (the in-memory twin). All are held to the same
contract tests in ``tests/frontend/test_job_source_contract.py``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from gwms_tasks.core.classad_text import AdExpr, AdValue


@dataclass(frozen=True, slots=True)
class JobGroup:
    """``count`` idle jobs that share the same attributes.

    Attributes:
        attrs: the attributes the match expression sees as ``job.<name>``.
        count: how many jobs (> 0).
    """

    attrs: Mapping[str, AdValue]
    count: int


@dataclass(frozen=True, slots=True)
class JobSnapshot:
    """The jobs of one group's source at one moment.

    Attributes:
        idle: the waiting jobs, grouped by attributes; the counts add up to every idle job.
        running: jobs being run (by glideins or by anything else).
    """

    idle: tuple[JobGroup, ...] = ()
    running: int = 0
    notes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def idle_count(self) -> int:
        return sum(group.count for group in self.idle)


class JobSource(Protocol):
    """Counts the idle and running jobs of one frontend group.

    Guarantees: ``snapshot`` reports every idle job exactly once (``idle_count`` is exact even
    when attributes could only be read for some of them), or raises ``TransientError`` when
    the source cannot be read; it never returns a partial count as if it were whole.
    """

    def snapshot(self) -> JobSnapshot:
        """The idle jobs grouped by attributes, and the number of running jobs."""
        ...


def _signature(attrs: Mapping[str, AdValue]) -> tuple[tuple[str, str, str], ...]:
    # Values of different types must not collapse (1, True and "1" are different attributes).
    return tuple(sorted((name, type(value).__name__, str(value)) for name, value in attrs.items()))


def group_jobs(jobs: Iterable[Mapping[str, AdValue]]) -> tuple[JobGroup, ...]:
    """Jobs grouped by identical attributes, groups in order of first appearance."""
    counts: Counter[tuple[tuple[str, str, str], ...]] = Counter()
    first: dict[tuple[tuple[str, str, str], ...], Mapping[str, AdValue]] = {}
    for attrs in jobs:
        key = _signature(attrs)
        counts[key] += 1
        first.setdefault(key, dict(attrs))
    return tuple(JobGroup(first[key], counts[key]) for key in first)


def plain_value(value: object) -> AdValue:
    """A job attribute as an ad value: scalars as they are, anything else as an expression."""
    if isinstance(value, bool | int | float | str) and not isinstance(value, AdExpr):
        return value
    return AdExpr(str(value))
