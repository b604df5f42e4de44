"""Which entries a group's idle jobs could run at, and how they are shared out among them.

The match expression of a group is a ClassAd expression over two nested ads, ``job`` and
``entry``: ``job.RequestCpus <= entry.GLIDEIN_CPUS``. It is evaluated by the htcondor ClassAd
library (classad2) once per (job group, entry) pair; only ``true`` (or a non-zero number)
matches, so an attribute a job or an entry lacks makes the expression undefined, not true.

A job that matches several entries is split evenly among them, glideinWMS-style, in whole
jobs: each gets ``count // k``, and the remainder goes one by one to the entries that have been
given the fewest jobs so far (ties by name). So demand is never counted twice, and a lone job
does not always land on the same entry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import classad2

from gwms_tasks.core.classad_text import (
    CLASSAD_ERRORS,
    AdFormatError,
    AdValue,
    is_true,
    parse_expression,
    to_classad,
)
from gwms_tasks.frontend.core_jobs import JobGroup

__all__ = ["MatchExpr", "MatchResult", "split_jobs", "to_classad"]


@dataclass(frozen=True, slots=True, eq=False)
class MatchExpr:
    """A compiled job-to-entry match expression.

    Attributes:
        text: the expression as configured.
    """

    text: str
    _tree: Any = field(repr=False)

    @classmethod
    def compile(cls, text: str) -> MatchExpr:
        """Parse ``text`` once.

        Raises:
            AdFormatError: not one valid ClassAd expression.
        """
        return cls(text, parse_expression(text))

    def matches(self, job: Any, entry: Any) -> bool:
        """Whether a job may run at an entry; both are ClassAds from :func:`to_classad`."""
        scope = classad2.ClassAd({"job": job, "entry": entry})
        try:
            return is_true(self._tree.eval(scope=scope))
        except CLASSAD_ERRORS:
            return False


@dataclass(frozen=True, slots=True)
class MatchResult:
    """Idle jobs per entry after the split.

    Attributes:
        per_entry: entry key -> whole idle jobs given to it (every candidate entry present).
        unmatched: idle jobs no candidate entry matched.
        problems: job groups whose attributes could not be evaluated (counted unmatched).
    """

    per_entry: Mapping[str, int]
    unmatched: int
    problems: tuple[str, ...] = ()


def split_jobs(
    groups: Sequence[JobGroup], entries: Mapping[str, Mapping[str, AdValue]], expr: MatchExpr
) -> MatchResult:
    """Match every job group against every candidate entry and split the jobs evenly.

    Args:
        groups: the idle jobs, grouped by attributes.
        entries: entry key (its ReqName) -> the attributes of its glidefactory ad.
        expr: the group's match expression.
    """
    entry_ads = {key: to_classad(attrs) for key, attrs in entries.items()}
    given = dict.fromkeys(sorted(entries), 0)
    unmatched = 0
    problems: list[str] = []
    for group in groups:
        try:
            job = to_classad(group.attrs)
        except AdFormatError as exc:
            problems.append(f"{group.count} job(s) not matched: {exc}")
            unmatched += group.count
            continue
        eligible = [key for key in given if expr.matches(job, entry_ads[key])]
        if not eligible:
            unmatched += group.count
            continue
        _share_out(group.count, eligible, given)
    return MatchResult(given, unmatched, tuple(problems))


def _share_out(count: int, eligible: list[str], given: dict[str, int]) -> None:
    base, remainder = divmod(count, len(eligible))
    for key in eligible:
        given[key] += base
    for key in sorted(eligible, key=lambda k: (given[k], k))[:remainder]:
        given[key] += 1
