"""The frontend's Celery app: settings, beat schedule, and ``gwms frontend run`` for real."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import yaml
from celery import Celery

from gwms_tasks.adapters.redis_admin import add_frontend_user
from gwms_tasks.celery_app import MAX_TASKS_PER_CHILD, CeleryTimings, worker_settings
from gwms_tasks.errors import PermanentError
from gwms_tasks.frontend.celery_app import (
    BEAT_SCHEDULER,
    CYCLE_TASK,
    beat_schedule,
    make_frontend_celery,
    runtime_of,
    worker_argv,
)
from gwms_tasks.frontend.state import RedisExplanationStore
from gwms_tasks.keys import Keys
from tests.frontend.builders import IDENTITY, config_of, frontend_data, with_changes
from tests.frontend.test_job_sources import broker_url

REPO = Path(__file__).resolve().parents[2]


def test_app_speaks_json_only_and_acknowledges_late(tmp_path: Path) -> None:
    config = config_of(frontend_data(tmp_path))

    conf = make_frontend_celery(config, tmp_path).conf

    assert (conf.task_serializer, conf.result_serializer, conf.event_serializer) == ("json",) * 3
    assert conf.accept_content == ["json"]
    assert (conf.task_acks_late, conf.task_reject_on_worker_lost) == (True, True)
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_ignore_result is True
    assert conf.task_default_queue == "gwms.frontend.cms_frontend"
    assert (conf.worker_send_task_events, conf.task_send_sent_event) == (True, True)
    assert conf.beat_scheduler == BEAT_SCHEDULER
    assert conf.broker_transport_options["visibility_timeout"] >= 2 * conf.task_time_limit


def test_messages_and_workers_are_set_up_exactly_as_the_factorys(tmp_path: Path) -> None:
    config = config_of(frontend_data(tmp_path))
    timings = CeleryTimings.for_loop_delay(config.frontend.loop_delay)

    conf = make_frontend_celery(config, tmp_path).conf

    for name, value in worker_settings(timings).items():
        assert conf[name] == value, name
    assert conf.worker_max_tasks_per_child == MAX_TASKS_PER_CHILD
    assert conf.task_time_limit == timings.task_time_limit
    assert conf.broker_transport_options == {"visibility_timeout": timings.visibility_timeout}
    assert conf.task_routes == {CYCLE_TASK: {"queue": "gwms.frontend.cms_frontend"}}


def test_each_enabled_group_is_cycled_every_loop_and_stale_cycles_expire(tmp_path: Path) -> None:
    data = frontend_data(tmp_path)
    data["groups"]["off"] = {**data["groups"]["main"], "enabled": False}
    data = with_changes(data, "celery.queue", "fe.q")

    schedule = beat_schedule(config_of(data))

    assert schedule == {
        "frontend_cycle:main": {
            "task": CYCLE_TASK,
            "schedule": 30.0,
            "kwargs": {"group": "main"},
            "options": {"queue": "fe.q", "expires": 27.0},
        }
    }


def test_app_registers_the_cycle_task_and_keeps_its_config(tmp_path: Path) -> None:
    config = config_of(frontend_data(tmp_path))

    app = make_frontend_celery(config, tmp_path)

    assert CYCLE_TASK in app.tasks
    assert runtime_of(app).config is config
    with pytest.raises(PermanentError, match="not built by make_frontend_celery"):
        runtime_of(Celery("other"))


def test_worker_embeds_beat_only_when_asked(tmp_path: Path) -> None:
    config = config_of(frontend_data(tmp_path))

    with_beat = worker_argv(config, "INFO", 2, beat=True)
    without = worker_argv(config, "INFO", 1, beat=False)

    assert with_beat[-3:] == ["-B", "--scheduler", BEAT_SCHEDULER]
    assert "-B" not in without
    assert without[:5] == [
        "worker",
        "-Q",
        "gwms.frontend.cms_frontend",
        "-n",
        "frontend-cms_frontend@%h",
    ]
    with pytest.raises(PermanentError, match="at least 1"):
        worker_argv(config, "INFO", 0, beat=True)


@pytest.mark.redis
def test_gwms_frontend_run_cycles_every_group_on_its_own(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    keys = Keys()
    url = add_frontend_user(redis_client, keys, IDENTITY)
    data = with_changes(frontend_data(tmp_path), "dashboard.url", url)
    data = with_changes(data, "frontend.loop_delay", 1)
    data = with_changes(data, "celery.broker_url", broker_url(redis_url, 4))
    data = with_changes(data, "groups.main.job_source.broker_url", broker_url(redis_url, 5))
    (tmp_path / "fe.yaml").write_text(yaml.safe_dump(data))
    store = RedisExplanationStore(redis_client, keys, IDENTITY)
    argv = [sys.executable, "-m", "gwms_tasks.cli", "frontend", "run", str(tmp_path / "fe.yaml"),
            "--loglevel", "WARNING"]  # fmt: skip
    process = subprocess.Popen(argv, cwd=REPO, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 40
        explanation = None
        while time.monotonic() < deadline:
            explanation = store.load("main")
            if explanation is not None and explanation.cycle >= 2:
                break
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()

    assert explanation is not None and explanation.cycle >= 2
    assert explanation.status == "no_factory"  # nothing was offered: it asks for nothing
    assert code == 0
