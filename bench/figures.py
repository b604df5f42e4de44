"""What the benchmark measures, and how it prints it."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

STEPS = ("find-work", "submit", "monitor")


def p95(values: Sequence[float]) -> float:
    """The 95th percentile by nearest rank (the value 95 % of the samples are at or below)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else math.nan


@dataclass
class CycleFigures:
    """One factory cycle over every entry.

    Attributes:
        number: 1 for the first cycle.
        publish_seconds: the frontends advertising their requests (before the cycle; not in
            ``wall_seconds``).
        per_entry: seconds each entry spent in each step, by step name (see :data:`STEPS`).
        wall_seconds: the whole cycle, from the first find-work to the last monitor.
        requests / rejected: request ads find-work accepted and rejected, over all entries.
        not_done: find-work passes that did not finish normally (busy, failed closed).
        orders / submitted: submit orders executed, and the glideins they added.
        job_actions: remove and release orders executed.
        glideins: glideins at the backends when each entry's monitor ran, summed.
    """

    number: int
    publish_seconds: float = 0.0
    per_entry: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STEPS})
    wall_seconds: float = 0.0
    requests: int = 0
    rejected: int = 0
    not_done: int = 0
    orders: int = 0
    submitted: int = 0
    job_actions: int = 0
    glideins: int = 0

    def step_total(self, step: str) -> float:
        return sum(self.per_entry[step])


@dataclass
class Latency:
    """One request of the first cycle, from its ad being published to its glideins existing.

    Attributes:
        total: seconds from the end of the frontend's advertise call to the end of the
            submit that created the glideins (includes waiting for the entries before it).
        own: seconds from the start of its entry's find-work to the end of that submit.
    """

    total: float
    own: float


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def cycle_lines(cycle: CycleFigures) -> list[str]:
    steps = ", ".join(f"{step} {cycle.step_total(step):.2f} s" for step in STEPS)
    lines = [
        f"cycle {cycle.number}: {cycle.wall_seconds:.2f} s ({steps}); "
        f"frontends published in {cycle.publish_seconds:.2f} s before it",
        f"  requests accepted {cycle.requests}, rejected {cycle.rejected}, "
        f"find-work not done {cycle.not_done}; submit orders {cycle.orders}, "
        f"glideins submitted {cycle.submitted}, remove/release orders {cycle.job_actions}; "
        f"glideins at the backends {cycle.glideins}",
        f"  per entry (ms)   {'mean':>8} {'p95':>8} {'max':>8}",
    ]
    for step in STEPS:
        values = cycle.per_entry[step]
        lines.append(
            f"  {step:<15}  {_ms(mean(values)):>8} {_ms(p95(values)):>8} "
            f"{_ms(max(values, default=math.nan)):>8}"
        )
    return lines


def latency_lines(latencies: Sequence[Latency]) -> list[str]:
    total = [item.total for item in latencies]
    own = [item.own for item in latencies]
    return [
        f"request-to-submit latency, first cycle ({len(latencies)} requests with glideins to "
        "submit; publish -> find-work -> submit, entries served in order by one worker):",
        f"  publish -> glideins at the backend   mean {mean(total):.3f} s, "
        f"p95 {p95(total):.3f} s, max {max(total, default=math.nan):.3f} s",
        f"  its entry's find-work -> glideins    mean {_ms(mean(own))} ms, "
        f"p95 {_ms(p95(own))} ms, max {_ms(max(own, default=math.nan))} ms",
    ]


def memory_lines(maxrss_kib: int, baseline_kib: int, traced_peak: int | None) -> list[str]:
    """Peak memory; ``baseline_kib``: the peak before the bench built anything (imports)."""
    traced = (
        f"tracemalloc peak {traced_peak / 2**20:.1f} MiB (Python allocations after start, on "
        "for this run)"
        if traced_peak is not None
        else "tracemalloc off (--tracemalloc turns it on; it makes the run ~3-4x slower)"
    )
    return [
        f"peak memory: ru_maxrss {maxrss_kib / 1024:.1f} MiB (whole process, resource.getrusage; "
        f"{baseline_kib / 1024:.1f} MiB of it before the run: interpreter and libraries); "
        f"{traced}"
    ]
