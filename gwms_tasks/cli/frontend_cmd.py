"""``gwms frontend ...``: check a frontend config, run the frontend, run one cycle, explain.

- ``gwms frontend config check FILE``: validate; print a summary, or every problem (exit 1);
- ``gwms frontend run CONFIG``: the Celery worker with an embedded beat (``--no-beat`` for more
  workers on other machines);
- ``gwms frontend cycle CONFIG --once``: one cycle of every enabled group (or ``--group``),
  in this process, without Celery; without ``--once`` it repeats every ``loop_delay``;
- ``gwms frontend explain CONFIG``: the last cycle of each group, as stored.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from gwms_tasks.cli._root import failing_cleanly, gwms
from gwms_tasks.errors import PermanentError
from gwms_tasks.frontend.celery_app import start_frontend
from gwms_tasks.frontend.core_config import FrontendConfig
from gwms_tasks.frontend.core_explain import render
from gwms_tasks.frontend.core_summary import summarize
from gwms_tasks.frontend.cycle import CycleReport, run_cycle
from gwms_tasks.frontend.deps import FrontendDeps, build_deps
from gwms_tasks.frontend.files import read_credentials, read_frontend_config

_CONFIG = click.argument("config_path", metavar="CONFIG", type=click.Path(path_type=Path))


@gwms.group()
def frontend() -> None:
    """The VO frontend: asks factories for glideins for its users' jobs."""


@frontend.group("config")
def frontend_config() -> None:
    """Check frontend configuration files."""


@frontend_config.command("check")
@click.argument("file", type=click.Path(path_type=Path))
def config_check(file: Path) -> None:
    """Validate FILE; print a summary, or every problem and exit 1."""
    with failing_cleanly():
        config = read_frontend_config(file)
    click.echo(f"{file}: OK")
    for line in summarize(config):
        click.echo(line)
    base_dir = file.resolve().parent
    for group in config.groups.values():
        for note in read_credentials(group, base_dir)[1]:
            click.echo(f"warning: {note}", err=True)


@frontend.command("run")
@_CONFIG
@click.option("--loglevel", default="INFO", show_default=True, help="Celery log level.")
@click.option("--concurrency", default=1, show_default=True, help="Cycles run at once.")
@click.option("--beat/--no-beat", default=True, show_default=True, help="Embed the beat.")
def run(config_path: Path, loglevel: str, concurrency: int, beat: bool) -> None:
    """Run the frontend's Celery worker (with its beat): a cycle per group every loop."""
    with failing_cleanly():
        code = start_frontend(config_path, loglevel, concurrency, beat)
    raise SystemExit(code)


@frontend.command("cycle")
@_CONFIG
@click.option("--once", is_flag=True, help="Run one cycle and exit (else repeat every loop).")
@click.option("--group", "groups", multiple=True, help="Only this group (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print each report as JSON.")
def cycle(config_path: Path, once: bool, groups: tuple[str, ...], as_json: bool) -> None:
    """Run frontend cycles in this process, without Celery."""
    with failing_cleanly():
        config = read_frontend_config(config_path)
        chosen = _groups(config, groups)
        deps = build_deps(config, config_path.resolve().parent)
        try:
            while True:
                started = time.monotonic()
                for group in chosen:
                    _print_report(run_cycle(deps, group), as_json)
                if once:
                    return
                time.sleep(max(0.0, config.frontend.loop_delay - (time.monotonic() - started)))
        finally:
            deps.close()


@frontend.command("explain")
@_CONFIG
@click.option("--group", "groups", multiple=True, help="Only this group (repeatable).")
@click.option("--entry", default=None, help="Only entries whose name contains this.")
@click.option("--json", "as_json", is_flag=True, help="Print the stored explanations as JSON.")
def explain(config_path: Path, groups: tuple[str, ...], entry: str | None, as_json: bool) -> None:
    """Show why the last cycle of each group asked for what it asked."""
    with failing_cleanly():
        config = read_frontend_config(config_path)
        chosen = _groups(config, groups, enabled_only=False)
        deps = build_deps(config, config_path.resolve().parent)
        try:
            _print_explanations(deps, chosen, entry, as_json)
        finally:
            deps.close()


def _groups(
    config: FrontendConfig, wanted: tuple[str, ...], *, enabled_only: bool = True
) -> list[str]:
    known = config.enabled_groups() if enabled_only else dict(config.groups)
    unknown = [group for group in wanted if group not in known]
    if unknown:
        names = ", ".join(known) or "none"
        raise PermanentError(f"unknown or disabled group(s) {', '.join(unknown)} (groups: {names})")
    return list(wanted) or list(known)


def _print_report(report: CycleReport, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.to_dict(), sort_keys=True))
        return
    click.echo(
        f"group {report.group}: {report.status} (cycle {report.cycle}); jobs "
        f"{report.idle_jobs} idle, {report.running_jobs} running; {report.requests} request(s) "
        f"for {report.requested_idle} idle glidein(s); {report.invalidated} ad(s) withdrawn; "
        f"{report.ignored} factory ad(s) ignored"
    )


def _print_explanations(
    deps: FrontendDeps, groups: list[str], entry: str | None, as_json: bool
) -> None:
    found = {group: deps.explanations.load(group) for group in groups}
    if as_json:
        data = {g: e.to_data() if e else None for g, e in found.items()}
        click.echo(json.dumps(data, sort_keys=True, indent=2))
        return
    for group, explanation in found.items():
        if explanation is None:
            click.echo(f"group {group}: no cycle has run yet")
            continue
        for line in render(explanation, entry):
            click.echo(line)
