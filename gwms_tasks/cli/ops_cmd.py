"""What operators look at and act on: ``gwms status``, ``gwms explain``, ``gwms submits``.

``status`` and ``explain`` read the state Redis only (no backend is queried: the counts are
those of each entry's last snapshot, with their age). ``submits retry`` sends orders through
the broker, with the limits and idempotency of :mod:`gwms_tasks.services.retry`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import click
from kombu.exceptions import KombuError

from gwms_tasks.adapters.celery_dispatcher import CeleryDispatcher
from gwms_tasks.celery_app import make_celery
from gwms_tasks.cli._ops import (
    NONE,
    ago,
    echo_json,
    echo_lines,
    open_runtime,
    operating,
    table,
    utc,
)
from gwms_tasks.cli._root import EXIT_INVALID, config_option, gwms
from gwms_tasks.core.ads import LimitTriggered
from gwms_tasks.core.config import FactoryConfig
from gwms_tasks.core.config_summary import masked_url
from gwms_tasks.errors import PermanentError, TransientError
from gwms_tasks.ports import JsonDict, TaskDispatcher
from gwms_tasks.services.monitoring_view import flag_name
from gwms_tasks.services.retry import RetryOutcome, oldest_first, retries_of, retry_failed
from gwms_tasks.services.status_report import ClientStatus, EntryStatus, factory_status

JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
STATUS_HEADERS = (
    "ENTRY", "CLIENT", "IDLE", "RUNNING", "HELD", "REQ_IDLE", "REQ_MAX", "COUNTED", "LIMITS",
    "REASON",
)  # fmt: skip
_SHOWN_ABOVE = frozenset({"client", "work_key", "at", "explain", "rejected", "reason"})


# -------------------------------------------------------------------------------- status


@gwms.command("status")
@config_option()
@click.option("--entry", "entries", multiple=True, help="Only this entry (repeatable).")
@JSON_OPTION
def status(config_path: Path, entries: tuple[str, ...], as_json: bool) -> None:
    """Entries x clients: glideins, requests, limits reached and the last decision's reason.

    Counts are those of each entry's last glidein snapshot; COUNTED says how old it is
    (STALE when find-work would fail closed).
    """
    with operating("read the factory state"):
        runtime = open_runtime(config_path)
        config = runtime.refresh()
        now = runtime.clock()
        report = factory_status(
            runtime.state, config, runtime.downtimes(), now, list(entries) or None
        )
    if as_json:
        echo_json({"generated_at": now, "entries": [e.to_json() for e in report]})
        return
    rows = [row for entry in report for row in _status_rows(entry)]
    echo_lines(table(STATUS_HEADERS, rows))


def _status_rows(entry: EntryStatus) -> list[list[str]]:
    snap = entry.snapshot
    counted = "never" if snap.taken_at is None else ago(snap.age_seconds)
    notes = []
    if not entry.enabled:
        notes.append("disabled")
    if entry.downtime:
        notes.append(f"downtime: {entry.downtime}")
    if snap.error:
        notes.append(f"glidein query failed: {snap.error}")
    rows = [
        [
            entry.entry,
            "*",
            *_counts(entry.counts.idle, entry.counts.running, entry.counts.held),
            *_counts(entry.requested_idle, entry.requested_max),
            f"STALE {counted}" if snap.stale else counted,
            _limits(entry.limits_triggered),
            "; ".join(notes) or NONE,
        ]
    ]
    rows.extend(_client_row(entry.entry, client) for client in entry.clients)
    return rows


def _client_row(entry: str, client: ClientStatus) -> list[str]:
    counts = client.counts
    return [
        entry,
        client.client,
        *_counts(counts.idle, counts.running, counts.held),
        *_counts(client.requested_idle, client.requested_max),
        "",
        _limits(client.limits_triggered),
        "; ".join(client.reasons) or NONE,
    ]


def _counts(*values: int) -> list[str]:
    return [str(value) for value in values]


def _limits(flags: Sequence[LimitTriggered]) -> str:
    """``IdleGlideinsPerEntry 200/200, ...`` (``-`` when none is reached)."""
    shown = [f"{flag_name(flag)} {flag.count}/{flag.maximum}" for flag in flags]
    return ", ".join(shown) or NONE


# -------------------------------------------------------------------------------- explain


@gwms.command("explain")
@click.argument("entry")
@config_option()
@click.option("--client", help="Only the requests of this client (ClientName).")
@JSON_OPTION
def explain(entry: str, config_path: Path, client: str | None, as_json: bool) -> None:
    """The last decision(s) of ENTRY in full: reason, explanation and every input."""
    with operating("read the decisions"):
        runtime = open_runtime(config_path)
        _check_entry(runtime.refresh(), entry)
        records = runtime.state.entries.decisions(entry)
        chosen = {k: r for k, r in sorted(records.items()) if client in (None, r.get("client"))}
        if client is not None and not chosen:
            clients = sorted({str(r.get("client")) for r in records.values()})
            raise PermanentError(
                f"no decision for client {client} on entry {entry} "
                f"(clients with decisions: {', '.join(clients) or 'none'})"
            )
        now = runtime.clock()
    if as_json:
        echo_json({"entry": entry, "decisions": [{"work_key": k, **r} for k, r in chosen.items()]})
        return
    if not chosen:
        click.echo(f"entry {entry}: no decision recorded yet (find-work has not run for it)")
        return
    for number, (work_key, record) in enumerate(chosen.items()):
        if number:
            click.echo("")
        echo_lines(_explain_lines(entry, work_key, record, now))


def _check_entry(config: FactoryConfig, entry: str) -> None:
    if entry not in config.entries:
        known = ", ".join(config.entries)
        raise PermanentError(f"unknown entry {entry} (configured: {known})")


def _explain_lines(entry: str, work_key: str, record: JsonDict, now: float) -> list[str]:
    at = record.get("at")
    when = at if isinstance(at, int | float) else None
    lines = [
        f"{entry} / {record.get('client', '?')}  (request {work_key})",
        f"  decided:     {utc(when)} ({ago(None if when is None else now - when)})",
    ]
    if "rejected" in record:
        lines.append(f"  outcome:     rejected ({record['rejected']})")
    elif "reason" in record:
        lines.append(f"  outcome:     {record['reason']}")
    else:
        submit = record.get("submit")
        reason = submit.get("reason") if isinstance(submit, dict) else None
        lines.append(f"  reason:      {reason or '?'}")
    lines.append(f"  explanation: {record.get('explain', '')}")
    details = [
        f"    {path}: {value}"
        for key, item in record.items()
        if key not in _SHOWN_ABOVE
        for path, value in _flatten(key, item)
    ]
    if details:
        lines.extend(["  inputs:", *details])
    return lines


def _flatten(path: str, value: object) -> Iterator[tuple[str, str]]:
    """``submit.entry_limits: max_idle=400, ...`` lines of a nested record.

    A dict of plain values is one line (glidein counts read ``idle 8 (wait 8), running 0,
    held 0, total 8``); nested dicts and lists of dicts are opened up.
    """
    if isinstance(value, dict) and value:
        if any(isinstance(item, dict | list) for item in value.values()):
            for key, item in value.items():
                yield from _flatten(f"{path}.{key}", item)
        else:
            yield path, _counts_text(value) if value.keys() >= _COUNT_KEYS else _pairs(value)
    elif isinstance(value, list) and any(isinstance(item, dict | list) for item in value):
        for index, item in enumerate(value):
            yield from _flatten(f"{path}[{index}]", item)
    else:
        yield path, _scalar(value)


_COUNT_KEYS = frozenset({"idle", "running", "held", "total"})


def _counts_text(counts: Mapping[str, object]) -> str:
    """``idle 8 (wait 8), running 0, held 0, total 8``: idle's non-zero parts in brackets."""
    parts = [f"{k} {v}" for k, v in counts.items() if k not in _COUNT_KEYS and v]
    idle = f"idle {counts['idle']}" + (f" ({', '.join(parts)})" if parts else "")
    return f"{idle}, running {counts['running']}, held {counts['held']}, total {counts['total']}"


def _pairs(values: Mapping[str, object]) -> str:
    return ", ".join(f"{key}={_scalar(item)}" for key, item in values.items())


def _scalar(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    if isinstance(value, dict):
        return "none"
    return str(value)


# -------------------------------------------------------------------------------- submits


@gwms.group()
def submits() -> None:
    """Submissions that failed for good, and sending them again."""


@submits.command("failed")
@config_option()
@JSON_OPTION
def submits_failed(config_path: Path, as_json: bool) -> None:
    """List the failed submits (retry them with `gwms submits retry`)."""
    with operating("read the failed submits"):
        failed = sorted(
            open_runtime(config_path).state.failed.list(), key=lambda f: (f.failed_at, f.failed_id)
        )
    if as_json:
        echo_json(
            [
                {
                    "id": f.failed_id,
                    "submit_key": f.submit_key,
                    "entry": f.entry,
                    "client": f.client,
                    "count": f.count,
                    "reason": f.reason,
                    "failed_at": f.failed_at,
                    "retries": retries_of(f),
                }
                for f in failed
            ]
        )
        return
    if not failed:
        click.echo("no failed submits")
        return
    headers = ("ID", "ENTRY", "CLIENT", "COUNT", "RETRIES", "FAILED", "REASON")
    rows = [
        [
            f.failed_id,
            f.entry,
            f.client,
            str(f.count),
            str(retries_of(f)),
            utc(f.failed_at),
            f.reason,
        ]
        for f in failed
    ]
    echo_lines(table(headers, rows))


@submits.command("retry")
@click.argument("ids", nargs=-1)
@click.option("--all", "retry_every", is_flag=True, help="Retry every failed submit.")
@config_option()
@JSON_OPTION
def submits_retry(
    ids: tuple[str, ...], retry_every: bool, config_path: Path, as_json: bool
) -> None:
    """Send failed submits ID... (or --all) again, within today's limits, at most once each.

    Exits 1 when one of them was not sent (refused, or not found); the reason is printed.
    """
    if bool(ids) == retry_every:
        raise click.UsageError("give failed submit IDs, or --all (not both)")
    outcomes: list[RetryOutcome] = []
    with operating("retry failed submits"):
        runtime = open_runtime(config_path)
        with _dispatcher(runtime.refresh()) as dispatcher:
            deps = runtime.factory_deps(dispatcher)
            wanted = oldest_first(deps) if retry_every else list(ids)
            for failed_id in wanted:
                outcome = retry_failed(deps, failed_id)
                outcomes.append(outcome)
                if not as_json:
                    click.echo(outcome.describe())
    if as_json:
        echo_json([outcome.to_json() for outcome in outcomes])
    elif not outcomes:
        click.echo("no failed submits")
    if not all(outcome.ok for outcome in outcomes):
        raise SystemExit(EXIT_INVALID)


@contextlib.contextmanager
def _dispatcher(config: FactoryConfig) -> Iterator[TaskDispatcher]:
    """The broker's dispatcher; broker failures become TransientError."""
    app = make_celery(config)
    try:
        yield CeleryDispatcher(app)
    except (KombuError, OSError) as exc:
        url = masked_url(config.redis.broker_url)
        raise TransientError(f"cannot send to the broker {url}: {exc}") from exc
    finally:
        app.close()
