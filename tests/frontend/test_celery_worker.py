"""A real Celery worker (solo pool, late acks: a glidein's payload) seen by the Celery job source.

The worker runs one task at a time; the tasks run until the test releases them, so the test
knows exactly what is running and waits by polling with a deadline, never by sleeping blindly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery

from gwms_tasks.frontend.core_jobs import JobSnapshot
from gwms_tasks.frontend.source_celery import CeleryQueueJobSource
from tests.frontend.test_job_sources import QUEUE, broker_url, celery_source
from tests.frontend.vo_worker_app import BROKER_ENV, WAIT_FOR_RELEASE

REPO = Path(__file__).resolve().parents[2]
RELEASE = "test:release"

pytestmark = pytest.mark.redis


@pytest.fixture
def worker(redis_url: str) -> Iterator[str]:
    """A solo-pool worker of the VO app consuming QUEUE; yields the broker URL."""
    url = broker_url(redis_url)
    env = {**os.environ, BROKER_ENV: url}
    argv = [sys.executable, "-m", "celery", "-A", "tests.frontend.vo_worker_app", "worker",
            "-Q", QUEUE, "-P", "solo", "-c", "1", "-l", "WARNING", "-n", "glidein_test@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat"]  # fmt: skip
    process = subprocess.Popen(argv, cwd=REPO, env=env)
    try:
        yield url
    finally:
        redis.Redis.from_url(url).rpush(RELEASE, *["go"] * 10)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for(
    source: CeleryQueueJobSource, condition: Callable[[JobSnapshot], bool], timeout: float = 30
) -> JobSnapshot:
    deadline = time.monotonic() + timeout
    while True:
        snapshot = source.snapshot()
        if condition(snapshot) or time.monotonic() > deadline:
            return snapshot
        time.sleep(0.1)


def test_task_a_worker_runs_counts_as_running_until_it_ends(worker: str) -> None:
    client = redis.Redis.from_url(worker)
    source = CeleryQueueJobSource(client, celery_source(worker))
    app = Celery("vo", broker=worker)
    app.conf.update(task_serializer="json", accept_content=["json"])
    for _ in range(3):
        app.send_task(WAIT_FOR_RELEASE, args=[RELEASE], queue=QUEUE)

    busy = wait_for(source, lambda s: s.running == 1)
    assert (busy.running, busy.idle_count) == (1, 2)

    client.rpush(RELEASE, "go")
    next_one = wait_for(source, lambda s: s.idle_count == 1 and s.running == 1)
    assert (next_one.running, next_one.idle_count) == (1, 1)

    client.rpush(RELEASE, "go", "go")
    done = wait_for(source, lambda s: s.running == 0 and s.idle_count == 0)
    assert (done.running, done.idle_count) == (0, 0)
    app.close()
    client.close()
