"""What a group's cycle decided and why: stored each cycle, shown by ``gwms frontend explain``.

A :class:`CycleExplanation` holds the group-wide numbers (jobs, glideins, budget), every
entry's request with its reasons and arithmetic steps, the entries that got no request and
why, and the factory ads that were not believed. It is also the state the next cycle starts
from (how many cycles in a row each entry has had no matched job). It round-trips through plain
JSON data; reading bad data raises PermanentError naming what is wrong.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from gwms_tasks.errors import PermanentError
from gwms_tasks.frontend.core_config import RemoveMode
from gwms_tasks.frontend.core_factories import Ignored, IgnoreReason
from gwms_tasks.frontend.core_plan import (
    EntryRequest,
    GlideinCounts,
    IdleReason,
    MaxReason,
    RemoveReason,
)


class CycleStatus(enum.StrEnum):
    """How a group's cycle went."""

    OK = "ok"
    JOB_SOURCE_FAILED = "job_source_failed"
    NO_FACTORY = "no_factory"


@dataclass(frozen=True, slots=True)
class SkippedEntry:
    """A selected entry the group sent no request to, and why."""

    key: str
    reason: str


@dataclass(frozen=True, slots=True)
class CycleExplanation:
    """One cycle of one group, explained.

    Attributes:
        group / client_name: the group and its ClientName.
        at: epoch seconds of the cycle.
        cycle: the cycle's number (0 first); the UpdateSequenceNumber of the ads it published.
        status: how it went; ``detail`` says more when it did not go well.
        idle_jobs / running_jobs / unmatched: the job source's numbers.
        unclaimed: running glideins of the group that run no job.
        glideins_total / budget: the group's glideins and how many more it may have.
        requests: the request of every entry that got one.
        skipped: selected entries without a request.
        ignored: factory ads left out.
        notes: anything else worth knowing (credentials not readable, ...).
    """

    group: str
    client_name: str
    at: float
    status: CycleStatus
    cycle: int = 0
    idle_jobs: int = 0
    running_jobs: int = 0
    unmatched: int = 0
    unclaimed: int = 0
    glideins_total: int = 0
    budget: int = 0
    requests: tuple[EntryRequest, ...] = ()
    skipped: tuple[SkippedEntry, ...] = ()
    ignored: tuple[Ignored, ...] = ()
    notes: tuple[str, ...] = ()
    detail: str = ""

    def zero_demand_cycles(self) -> dict[str, int]:
        """Per entry, the cycles in a row without a matched job, for the next cycle."""
        return {request.key: request.zero_demand_cycles for request in self.requests}

    def to_data(self) -> dict[str, Any]:
        """Plain JSON data (enums as their values)."""
        data = asdict(self)
        data["status"] = self.status.value
        return data

    @classmethod
    def from_data(cls, data: Any) -> CycleExplanation:
        """Read :meth:`to_data` output back.

        Raises:
            PermanentError: the data is not an explanation.
        """
        try:
            return cls(
                group=str(data["group"]),
                client_name=str(data["client_name"]),
                at=float(data["at"]),
                status=CycleStatus(data["status"]),
                **{name: int(data[name]) for name in _COUNTS},
                requests=tuple(_request(item) for item in data["requests"]),
                skipped=tuple(_skipped(item) for item in data["skipped"]),
                ignored=tuple(_ignored(item) for item in data["ignored"]),
                notes=tuple(str(note) for note in data["notes"]),
                detail=str(data["detail"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise PermanentError(f"not a stored frontend cycle explanation: {exc!r}") from exc


_COUNTS = (
    "cycle",
    "idle_jobs",
    "running_jobs",
    "unmatched",
    "unclaimed",
    "glideins_total",
    "budget",
)


def _request(data: Mapping[str, Any]) -> EntryRequest:
    return EntryRequest(
        key=str(data["key"]),
        idle=int(data["idle"]),
        max_glideins=int(data["max_glideins"]),
        remove_excess=RemoveMode(data["remove_excess"]),
        remove_margin=int(data["remove_margin"]),
        idle_reason=IdleReason(data["idle_reason"]),
        max_reason=MaxReason(data["max_reason"]),
        remove_reason=RemoveReason(data["remove_reason"]),
        matched=int(data["matched"]),
        unclaimed=int(data["unclaimed"]),
        wanted=int(data["wanted"]),
        new_glideins=int(data["new_glideins"]),
        glideins=GlideinCounts(**{k: int(v) for k, v in dict(data["glideins"]).items()}),
        zero_demand_cycles=int(data["zero_demand_cycles"]),
        steps=tuple(str(step) for step in data["steps"]),
    )


def _skipped(data: Mapping[str, Any]) -> SkippedEntry:
    return SkippedEntry(str(data["key"]), str(data["reason"]))


def _ignored(data: Mapping[str, Any]) -> Ignored:
    return Ignored(
        str(data["ad_type"]), str(data["name"]), IgnoreReason(data["reason"]), str(data["detail"])
    )


def render(explanation: CycleExplanation, entry: str | None = None) -> list[str]:
    """The explanation as lines of text; only the entries whose name contains ``entry``."""
    when = datetime.datetime.fromtimestamp(explanation.at, tz=datetime.UTC)
    lines = [
        f"group {explanation.group} (client {explanation.client_name}), cycle of "
        f"{when:%Y-%m-%d %H:%M:%S} UTC (#{explanation.cycle}): {explanation.status}"
        + (f" ({explanation.detail})" if explanation.detail else ""),
        f"  jobs: {explanation.idle_jobs} idle ({explanation.unmatched} matched no entry), "
        f"{explanation.running_jobs} running",
        f"  glideins: {explanation.glideins_total} (idle + running), {explanation.unclaimed} "
        f"running without a job; the group may add {explanation.budget}",
    ]
    for request in explanation.requests:
        if entry is None or entry in request.key:
            lines.extend(_request_lines(request))
    for skipped in explanation.skipped:
        if entry is None or entry in skipped.key:
            lines.append(f"  entry {skipped.key}: no request: {skipped.reason}")
    lines.extend(f"  {ignored.explain()}" for ignored in explanation.ignored)
    lines.extend(f"  note: {note}" for note in explanation.notes)
    return lines


def _request_lines(request: EntryRequest) -> list[str]:
    counts = request.glideins
    lines = [
        f"  entry {request.key}: ReqIdleGlideins={request.idle} ({request.idle_reason}) "
        f"ReqMaxGlideins={request.max_glideins} ({request.max_reason}) "
        f"ReqRemoveExcess={request.remove_excess} ({request.remove_reason})",
        f"    glideins here: {counts.idle} idle, {counts.running} running, {counts.held} held",
    ]
    lines.extend(f"    - {step}" for step in request.steps)
    return lines
