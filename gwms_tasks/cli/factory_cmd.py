"""Run the factory: ``gwms worker factory|user``, ``beat``, ``watch``, ``reload``, ``flower``.

Each blocks until stopped (SIGTERM/SIGINT) except ``reload``. ``workers/`` has the systemd
units and the command lines for a fleet of machines.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from pathlib import Path

import click

from gwms_tasks.adapters.redis_admin import check_persistence
from gwms_tasks.adapters.redis_dashboard import RedisChangeFeed
from gwms_tasks.celery_app import make_celery
from gwms_tasks.cli._root import config_option, failing_cleanly, gwms
from gwms_tasks.config_file import read_config
from gwms_tasks.core.config import DashboardKind, FactoryConfig
from gwms_tasks.errors import GwmsError
from gwms_tasks.queues import FACTORY_QUEUE, TaskName
from gwms_tasks.runtime import Runtime, user_dir
from gwms_tasks.schedule import EXPIRES_FRACTION, reload
from gwms_tasks.services.watch import WatchTargets, run_watcher
from gwms_tasks.worker_start import start_beat, start_factory_worker, start_user_worker

log = logging.getLogger(__name__)

LOGLEVEL = click.option(
    "--loglevel",
    "-l",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)


@gwms.group()
def worker() -> None:
    """Start a Celery worker of the factory."""


@worker.command("factory")
@config_option()
@click.option("--concurrency", "-c", default=2, show_default=True, type=int)
@click.option(
    "--watch/--no-watch",
    default=True,
    show_default=True,
    help="Also run the change watcher (find-work within a second of a changed request).",
)
@LOGLEVEL
def worker_factory(config_path: Path, concurrency: int, watch: bool, loglevel: str) -> None:
    """Run the factory worker: find-work, monitor, advertise, credentials, aggregation.

    At start it creates (or rotates, per its age) the factory key and warns when the state
    Redis would lose data (no AOF, or an eviction policy).
    """
    logging.basicConfig(level=loglevel.upper())
    with failing_cleanly():
        runtime = Runtime(read_config(config_path))
        runtime.create_factory_key()
        for warning in check_persistence(runtime.state_client):
            log.warning("state Redis: %s", warning)
        watcher = _spawn_watcher(config_path, loglevel) if watch else None
        try:
            code = start_factory_worker(config_path, concurrency, loglevel)
        finally:
            if watcher is not None:
                watcher.terminate()
                watcher.wait(timeout=10)
    raise SystemExit(code)


def _spawn_watcher(config_path: Path, loglevel: str) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "gwms_tasks.cli", "watch", "--config", str(config_path)]
    return subprocess.Popen([*argv, "--loglevel", loglevel])


@worker.command("user")
@click.argument("username")
@config_option()
@click.option("--concurrency", "-c", default=2, show_default=True, type=int)
@LOGLEVEL
def worker_user(username: str, config_path: Path, concurrency: int, loglevel: str) -> None:
    """Run USERNAME's worker: submit, release, remove, store credentials, as that user.

    Started as root it becomes USERNAME before consuming anything; started as another user
    it refuses unless it is USERNAME. At start it creates its own key pair (private key 0600
    in its own directory) and publishes the public key, so that the factory can seal
    credentials for it alone.
    """
    logging.basicConfig(level=loglevel.upper())

    def publish_key(config: FactoryConfig) -> None:
        user_dir(config, username).mkdir(mode=0o700, parents=True, exist_ok=True)
        Runtime(config).user_deps(username)

    with failing_cleanly():
        code = start_user_worker(
            config_path, username, loglevel, concurrency=concurrency, prepare=publish_key
        )
    raise SystemExit(code)


@gwms.command("beat")
@config_option()
@LOGLEVEL
def beat(config_path: Path, loglevel: str) -> None:
    """Run celery beat (RedBeat: the schedule in Redis, one active beat, standbys wait)."""
    with failing_cleanly():
        code = start_beat(config_path, loglevel)
    raise SystemExit(code)


@gwms.command("reload")
@config_option()
def reload_config(config_path: Path) -> None:
    """Validate the config file and apply it to the running factory without restarts.

    A bad file changes nothing: the running config stays. Workers pick the new one up
    within seconds; beat's entries are added, removed or changed to match.
    """
    with failing_cleanly():
        report = reload(config_path)
    click.echo(f"{config_path}: accepted (sha256 {report.sha256[:12]})")
    if not report.config_changed:
        click.echo("  unchanged")
    for label, names in (
        ("added", report.sync.added),
        ("removed", report.sync.removed),
        ("changed", report.sync.changed),
    ):
        click.echo(f"  {label}: {', '.join(names) or '-'}")


@gwms.command("watch")
@config_option()
@LOGLEVEL
def watch(config_path: Path, loglevel: str) -> None:
    """Trigger find-work within about a second of a changed request (Redis dashboard only).

    `gwms worker factory` runs one by default; several may run (one triggers per change).
    """
    logging.basicConfig(level=loglevel.upper())
    with failing_cleanly():
        runtime = Runtime(read_config(config_path))
        if runtime.config.dashboard.kind != DashboardKind.REDIS:
            click.echo("no change feed on an HTCondor collector: beat's cycle only", err=True)
            return
        app = make_celery(runtime.config, include=())
        feed = RedisChangeFeed(runtime.dashboard_client(), runtime.keys)

    def targets() -> WatchTargets:
        config = runtime.refresh()
        fac = config.factory
        return WatchTargets(fac.name, fac.glidein_name, frozenset(config.enabled_entries()))

    def expires() -> float:
        return runtime.config.factory.loop_delay * EXPIRES_FRACTION

    def trigger_entry(entry: str) -> None:
        app.send_task(
            str(TaskName.FIND_WORK),
            kwargs={"entry": entry, "triggered": True},
            queue=FACTORY_QUEUE,
            expires=expires(),
        )

    def trigger_credentials() -> None:
        app.send_task(str(TaskName.CREDENTIALS), queue=FACTORY_QUEUE, expires=expires())

    stop = threading.Event()
    try:
        run_watcher(feed, targets, trigger_entry, trigger_credentials, stop)
    except KeyboardInterrupt:
        stop.set()
    except GwmsError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        feed.close()


@gwms.command("flower", context_settings={"ignore_unknown_options": True})
@config_option()
@click.option("--port", type=int, default=None, help="Default: flower.port of the config.")
@click.option("--address", default="127.0.0.1", show_default=True)
@click.argument("flower_args", nargs=-1, type=click.UNPROCESSED)
def flower(config_path: Path, port: int | None, address: str, flower_args: tuple[str, ...]) -> None:
    """Run Flower on the factory's broker: every task, its arguments, retries and failures.

    Extra arguments go to Flower (e.g. --basic-auth=user:password, --url-prefix=flower).
    """
    with failing_cleanly():
        config = read_config(config_path)
        app = make_celery(config, include=())
    listen = port if port is not None else config.flower.port
    argv = ["flower", f"--port={listen}", f"--address={address}", *flower_args]
    raise SystemExit(int(app.start(argv=argv) or 0))
