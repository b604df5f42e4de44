"""The monitor cycle of one entry: glidein counts, a monitoring sample, completed glideins.

One pass (the per-entry *monitor* task, every loop):

1. advance the backend when it models time itself (the simulated site moves with the monitor);
2. query the entry's glideins; when that fails, record the failure on the entry's snapshot (so
   find-work fails closed while it lasts) and stop;
3. store the snapshot, as find-work does (:func:`~.snapshot.store_snapshot`);
4. add a time-series sample: the entry's ``idle``/``running``/``held``/``total`` and the
   ``requested_idle``/``requested_max`` of its current last decisions (those of requests still
   there, :func:`~.monitoring_decisions.is_current`), and the same per client as
   ``client:<client>:<name>``;
5. when the backend reports finished glideins (``finished(since)``, the local site), read each
   one's output once, from the newest finish already recorded on: parse it, keep the raw
   stdout/stderr under the client log directory (:mod:`.glidein_logs`), record the outcome and
   count it;
6. delete kept logs older than ``factory.log_retention_days``.

Counters (``Counters.add``, per entry): ``cycles:monitor``, ``cycle_seconds:monitor``,
``query_failures``, and per newly recorded glidein ``completed``, ``completed:<result>``,
``completed_user_jobs``, ``completed_wall_seconds``, ``completed_waste_seconds``, each also as
``client:<client>:<name>``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol, TypeGuard, runtime_checkable

from gwms_tasks.core.glidein_log import GlideinOutcome, parse_glidein_output
from gwms_tasks.errors import GwmsError, PermanentError
from gwms_tasks.ports import CompletedGlidein, EntrySnapshot, GlideinTags, GridBackend, JsonDict
from gwms_tasks.services.deps import FactoryDeps
from gwms_tasks.services.glidein_logs import client_log_dir, delete_old_logs, keep_logs
from gwms_tasks.services.monitoring_decisions import is_current
from gwms_tasks.services.snapshot import store_snapshot

log = logging.getLogger(__name__)

SERIES_COUNTS: Final = ("idle", "running", "held", "total")
"""Glidein counts of the snapshot that go into each time-series sample."""
SERIES_REQUESTED: Final = ("requested_idle", "requested_max")
"""Summed from the ``submit`` part of the entry's current last decisions."""
PROBLEMS_SHOWN: Final = 20
"""Problems listed in a task result; a broken log directory would otherwise list every glidein."""


class FinishedJob(Protocol):
    """A glidein that ended, as a backend with ``finished`` reports it (a local-site job)."""

    @property
    def job_id(self) -> str: ...

    @property
    def tags(self) -> GlideinTags: ...

    @property
    def stdout(self) -> str | None:
        """Path of the glidein's standard output."""
        ...

    @property
    def stderr(self) -> str | None:
        """Path of its standard error."""
        ...

    @property
    def exit_code(self) -> int | None: ...

    @property
    def finished_at(self) -> float | None: ...


@runtime_checkable
class ReportsFinished(Protocol):
    """A backend that can list the glideins that ended, with their output."""

    def finished(self, since: float) -> Sequence[FinishedJob]:
        """Glideins that ended at or after ``since``, oldest first."""
        ...


@runtime_checkable
class Advances(Protocol):
    """A backend that models time itself and is moved forward by the monitor."""

    def advance(self, now: float) -> int: ...


@dataclass
class MonitorResult:
    """What one monitor pass did (returned by the task; shown in Flower)."""

    entry: str
    status: str = "done"  # done | query_failed
    glideins: int = 0
    completed: int = 0  # glideins newly recorded as completed
    logs_kept: int = 0
    logs_deleted: int = 0
    detail: str = ""
    problems: list[str] = field(default_factory=list)  # what went wrong without stopping

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict, with at most :data:`PROBLEMS_SHOWN` problems (all are logged)."""
        shown = self.problems[:PROBLEMS_SHOWN]
        if len(self.problems) > PROBLEMS_SHOWN:
            shown.append(f"... and {len(self.problems) - PROBLEMS_SHOWN} more (see the log)")
        return asdict(self) | {"problems": shown}


def monitor_entry(deps: FactoryDeps, entry: str) -> MonitorResult:
    """One monitor pass for ``entry`` (see the module docstring).

    Raises:
        PermanentError: the entry is not configured, or a stored record is corrupt.
        TransientError: the state store is unreachable.
    """
    if entry not in deps.config.entries:
        raise PermanentError(f"monitor: entry {entry!r} is not in the configuration")
    started = now = deps.clock()
    result = MonitorResult(entry)
    backend = deps.backend_for(entry)
    try:
        if isinstance(backend, Advances):
            backend.advance(now)
        glideins = backend.query()
    except GwmsError as exc:
        deps.state.entries.record_query_failure(entry, str(exc), now)
        log.warning("entry %s: glidein query failed: %s", entry, exc)
        result.status, result.detail = "query_failed", f"glidein query failed: {exc}"
        deps.state.counters.add(entry, {"cycles:monitor": 1, "query_failures": 1})
        return result
    snapshot = store_snapshot(deps, entry, glideins, now)
    result.glideins = len(glideins)
    decisions = deps.state.entries.decisions(entry)
    loop_delay = deps.config.factory.loop_delay
    deps.state.series.add(entry, now, series_values(snapshot, decisions, now, loop_delay))
    _collect_completed(deps, entry, backend, now, result)
    _delete_old_logs(deps, entry, now, result)
    seconds = max(0.0, deps.clock() - started)
    deps.state.counters.add(entry, {"cycles:monitor": 1, "cycle_seconds:monitor": seconds})
    return result


def series_values(
    snapshot: EntrySnapshot, decisions: Mapping[str, JsonDict], now: float, loop_delay: float
) -> dict[str, float]:
    """The sample of one entry at ``now``: its counts and requests, and the same per client.

    Only current decisions count as requests (an old one belongs to a request that is gone).
    Every client seen in the snapshot or in a current decision gets every value (0 when it has
    none), so a chart line does not vanish while a client has no glidein.
    """
    current = (d for d in decisions.values() if is_current(d, now, loop_delay))
    requests = [r for r in map(_requested, current) if r is not None]
    clients = {s.removeprefix("client:") for s in snapshot.counts if s.startswith("client:")}
    clients |= {client for client, _ in requests if client}
    scopes = [("", "entry"), *((f"client:{c}:", f"client:{c}") for c in sorted(clients))]
    values: dict[str, float] = {}
    for prefix, scope in scopes:
        counts = snapshot.counts.get(scope, {})
        values |= {prefix + name: float(counts.get(name, 0)) for name in SERIES_COUNTS}
        values |= {prefix + name: 0.0 for name in SERIES_REQUESTED}
    for client, requested in requests:
        for prefix in ["", f"client:{client}:"] if client else [""]:
            for name, value in zip(SERIES_REQUESTED, requested, strict=True):
                values[prefix + name] += value
    return values


def _requested(decision: Mapping[str, object]) -> tuple[str, tuple[float, float]] | None:
    """``(client, (requested idle, requested max))`` of a decided request; None for a rejected
    or failed-closed one (no ``submit`` part: it requested nothing that was acted on)."""
    submit = decision.get("submit")
    if not isinstance(submit, Mapping):
        return None
    client = decision.get("client")
    idle, most = submit.get("requested_idle"), submit.get("requested_max")
    if not (_is_number(idle) and _is_number(most)):
        return None
    return (client if isinstance(client, str) else ""), (float(idle), float(most))


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


# ----------------------------------------------------------------------------------------------
# completed glideins


def _collect_completed(
    deps: FactoryDeps, entry: str, backend: GridBackend, now: float, result: MonitorResult
) -> None:
    if not isinstance(backend, ReportsFinished):
        return
    since = deps.state.completed.last_finished(entry) or 0.0
    try:
        jobs = backend.finished(since)
    except GwmsError as exc:
        log.warning("entry %s: cannot list finished glideins: %s", entry, exc)
        result.problems.append(f"cannot list finished glideins: {exc}")
        return
    for job in jobs:
        outcome = _completed(deps, entry, job, now, result)
        try:
            recorded = deps.state.completed.record(outcome)
        except PermanentError as exc:
            log.error("entry %s: %s", entry, exc)
            result.problems.append(str(exc))
            continue
        if recorded:
            result.completed += 1
            deps.state.counters.add(entry, outcome_counters(outcome))


def _completed(
    deps: FactoryDeps, entry: str, job: FinishedJob, now: float, result: MonitorResult
) -> CompletedGlidein:
    """Parse and keep the output of one finished glidein (problems are noted, not raised)."""
    stdout, out_problem = _read(job.stdout)
    stderr, err_problem = _read(job.stderr)
    problems = [p for p in (out_problem, err_problem) if p]
    finished_at = job.finished_at if job.finished_at is not None else now
    kept = ""
    factory = deps.config.factory
    try:
        directory = client_log_dir(
            Path(factory.client_log_base_dir), job.tags.username, factory.glidein_name, entry
        )
        kept = str(keep_logs(directory, job.job_id, (job.stdout, job.stderr), finished_at))
        result.logs_kept += 1
    except PermanentError as exc:
        problems.append(f"output not kept: {exc}")
    except OSError as exc:
        problems.append(f"output not kept: {exc.strerror or exc} ({exc.filename})")
    for problem in problems:
        log.warning("entry %s: glidein %s: %s", entry, job.job_id, problem)
    result.problems += [f"glidein {job.job_id}: {p}" for p in problems]
    outcome = parse_glidein_output(stdout, stderr)
    return _to_completed(job, entry, finished_at, outcome, kept, out_problem)


def _to_completed(
    job: FinishedJob,
    entry: str,
    finished_at: float,
    outcome: GlideinOutcome,
    log_path: str,
    unreadable: str | None,
) -> CompletedGlidein:
    script, category, detail = "", "", unreadable or ""
    if (failure := outcome.failure) is not None:
        script, category, detail = failure.script, failure.category.value, failure.detail
    elif (payload := outcome.payload_failure) is not None:
        category, detail = payload.category.value, f"payload {payload.kind}: {payload.detail}"
    return CompletedGlidein(
        job_id=job.job_id,
        entry=entry,
        client=job.tags.client,
        security_class=job.tags.security_class,
        frontend=job.tags.frontend,
        finished_at=finished_at,
        result=outcome.result.value,
        exit_code=outcome.exit_code if outcome.exit_code is not None else job.exit_code,
        wall_seconds=outcome.duration or 0.0,
        validation_seconds=outcome.validation_seconds or 0.0,
        payload_seconds=outcome.payload_seconds or 0.0,
        user_jobs=outcome.jobs_run or 0,
        failed_script=script,
        failure_category=category,
        failure_detail=detail,
        log_path=log_path,
    )


def _delete_old_logs(deps: FactoryDeps, entry: str, now: float, result: MonitorResult) -> None:
    factory = deps.config.factory
    before = now - factory.log_retention_days * 24 * 3600
    deleted, problems = delete_old_logs(
        Path(factory.client_log_base_dir), factory.glidein_name, entry, before
    )
    for problem in problems:
        log.warning("entry %s: %s", entry, problem)
    result.logs_deleted += deleted
    result.problems += problems


def _read(path: str | None) -> tuple[str, str | None]:
    """The text of an output file, or "" and why it could not be read."""
    if not path:
        return "", None
    try:
        return Path(path).read_text(errors="replace"), None
    except OSError as exc:
        return "", f"cannot read its output {path}: {exc.strerror or exc}"


def outcome_counters(outcome: CompletedGlidein) -> dict[str, float]:
    """Counter increments for one newly recorded glidein, for the entry and its client."""
    waste = outcome.wall_seconds if outcome.user_jobs == 0 else 0.0
    values = {
        "completed": 1.0,
        f"completed:{outcome.result}": 1.0,
        "completed_user_jobs": float(outcome.user_jobs),
        "completed_wall_seconds": outcome.wall_seconds,
        "completed_waste_seconds": waste,
    }
    if outcome.client:
        values |= {f"client:{outcome.client}:{name}": v for name, v in list(values.items())}
    return values
