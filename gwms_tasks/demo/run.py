"""``make demo``: the whole pilot loop on one machine, from demand to drained pilots.

Starts an embedded Redis (AOF, private directory), builds the staging area, then the web server,
beat, the factory worker, the demo user's worker, two local sites (3 and 2 slots; the second
holds a quarter of its glideins), Flower, and a frontend whose Celery job source receives a batch
of demo user jobs. It prints the URLs, then a live table until every user job is done and the
glideins have drained, then a summary; it stops everything it started and exits 0
(``--keep-running`` leaves it up until Ctrl-C). On any failure it prints which process failed
and the end of its log, stops everything, and exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

import redis

from gwms_tasks.adapters.redis_admin import add_frontend_user
from gwms_tasks.config_file import read_config
from gwms_tasks.demo.observe import Observer, render_summary, render_table, summary_data
from gwms_tasks.demo.setup import (
    FACTORY,
    FRONTEND,
    REPO,
    SITES,
    VO_QUEUE,
    DemoLayout,
    factory_config,
    frontend_config,
    make_layout,
    write_yaml,
)
from gwms_tasks.demo.supervisor import DemoError, Supervisor
from gwms_tasks.demo.vo import JOB, make_app
from gwms_tasks.embedded_redis import RedisServer, start_redis
from gwms_tasks.keys import Keys
from gwms_tasks.services.staging_build import build_staging, staging_spec_from_config

TICK_SECONDS = 2.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=24, help="demo user jobs (default 24)")
    parser.add_argument("--job-seconds", type=float, default=3.0, help="each job's run time")
    parser.add_argument("--idle-timeout", type=int, default=20, help="pilot idle timeout (s)")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up after (s)")
    parser.add_argument("--dir", type=Path, default=REPO / ".demo", help="the demo's directory")
    parser.add_argument("--keep-running", action="store_true", help="stay up until Ctrl-C")
    parser.add_argument("--quiet", action="store_true", help="no live table, summary only")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    layout = make_layout(args.dir.resolve(), args.idle_timeout)
    supervisor = Supervisor(layout.logs, env={"PYTHONPATH": str(REPO)})
    server: RedisServer | None = None
    vo_server: RedisServer | None = None
    try:
        server = start_redis(
            directory=layout.base / "redis", persist_acl=True, password=layout.redis_password
        )
        vo_server = start_redis(directory=layout.base / "vo_redis")
        layout = replace(layout, redis_port=server.port, vo_redis_port=vo_server.port)
        _configure(layout)
        _start(supervisor, layout)
        _wait_ready(supervisor, layout)
        _announce(layout)
        observer = Observer(layout, args.jobs)
        _send_jobs(layout, args.jobs, args.job_seconds)
        _watch(supervisor, observer, args.timeout, args.quiet)
        print(render_summary(observer))
        summary = layout.base / "summary.json"
        summary.write_text(json.dumps(summary_data(observer), indent=2) + "\n")
        if args.keep_running:
            print("Everything is still running (--keep-running): Ctrl-C to stop it.")
            while True:
                supervisor.check()
                time.sleep(TICK_SECONDS)
        return 0 if observer.agreed else 1
    except KeyboardInterrupt:
        print("\nCtrl-C: stopping everything.")
        return 0 if args.keep_running else 130
    except DemoError as exc:
        print(f"\nThe demo failed: {exc}", file=sys.stderr)
        print(f"Every process's log is in {layout.logs}", file=sys.stderr)
        return 1
    finally:
        supervisor.stop_all()
        for redis_server in (server, vo_server):
            if redis_server is not None:
                redis_server.stop()
        print(f"Stopped. Logs: {layout.logs}")


def _configure(layout: DemoLayout) -> None:
    """Both config files, the staging area, the frontend's dashboard user."""
    write_yaml(layout.factory_config, factory_config(layout))
    config = read_config(layout.factory_config)
    build_staging(staging_spec_from_config(config), Path(config.factory.stage_dir))
    admin = redis.Redis.from_url(layout.dashboard_url)
    url = add_frontend_user(admin, Keys(), FRONTEND, factory_writers=(FACTORY,))
    admin.close()
    write_yaml(layout.frontend_config, frontend_config(layout, url))


def _start(supervisor: Supervisor, layout: DemoLayout) -> None:
    cfg = ["--config", str(layout.factory_config)]
    supervisor.gwms("web", "web", *cfg)
    supervisor.gwms("factory-worker", "worker", "factory", *cfg)
    supervisor.gwms("user-worker", "worker", "user", layout.username, *cfg)
    supervisor.gwms("beat", "beat", *cfg)
    for entry in SITES:
        supervisor.gwms(f"site-{entry}", "site", "run", entry, *cfg)
    supervisor.gwms("flower", "flower", *cfg, "--port", str(layout.flower_port))
    supervisor.start(
        "frontend-web",
        [
            sys.executable,
            "-m",
            "gwms_tasks.demo.stage_server",
            str(layout.frontend_stage),
            str(layout.frontend_web_port),
            "/frontend/stage",
        ],
    )
    supervisor.gwms("frontend", "frontend", "run", str(layout.frontend_config))


def _wait_ready(supervisor: Supervisor, layout: DemoLayout, timeout: float = 90.0) -> None:
    """The web page answers and the demo user's worker has published its key."""
    state = redis.Redis.from_url(layout.state_url)
    key = Keys().user_public_key(layout.username)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        supervisor.check()
        if state.exists(key) and _answers(layout.monitoring_url):
            state.close()
            return
        time.sleep(0.5)
    state.close()
    raise DemoError(f"the factory was not up within {timeout:.0f} s")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (our http URL)
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _announce(layout: DemoLayout) -> None:
    print("gwms-tasks demo: a factory, a frontend and two local sites on this machine")
    print(f"  monitoring pages  {layout.monitoring_url}")
    print(f"  Flower (tasks)    {layout.flower_url}")
    print(
        f"  Redis             redis://127.0.0.1:{layout.redis_port} (AOF in {layout.base}; "
        "its password is in the configs)"
    )
    print(f"  configs           {layout.factory_config}  {layout.frontend_config}")
    print(f"  logs              {layout.logs}")
    print(f"  demo user         {layout.username} (its worker submits the glideins)")


def _send_jobs(layout: DemoLayout, jobs: int, seconds: float) -> None:
    app = make_app(layout.vo_broker_url)
    with app.connection_for_write() as connection:
        for number in range(jobs):
            app.send_task(JOB, args=[number, seconds], queue=VO_QUEUE, connection=connection)
    print(f"Sent {jobs} user jobs to the VO queue {VO_QUEUE!r}.")


def _watch(supervisor: Supervisor, observer: Observer, timeout: float, quiet: bool) -> None:
    deadline = time.monotonic() + timeout
    while True:
        supervisor.check()
        observer.sample()
        if not quiet:
            print(render_table(observer, clear=sys.stdout.isatty()), flush=True)
        if observer.finished():
            return
        if time.monotonic() > deadline:
            raise DemoError(
                f"not finished after {timeout:.0f} s: {observer.jobs_done}/{observer.jobs} jobs "
                f"done, {observer.live_glideins} glideins still live"
            )
        time.sleep(TICK_SECONDS)
