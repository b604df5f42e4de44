"""The demo VO's Celery application: the user jobs that ``make demo`` sends to its pilots.

A pilot (glidein running the celery payload) imports it as ``gwms_tasks.demo.vo:app`` with
the broker the frontend passes as a glidein parameter. Each job sleeps a little, as a small
analysis job would compute, and counts itself done in the VO's Redis (``demo:done``) so the
demo can tell when every job ran, and where.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

import redis
from celery import Celery, Task

JOB = "demo_vo.analyse"
DONE_KEY = "demo:done"
WHERE_KEY = "demo:where"


def make_app(broker: str | None = None) -> Celery:
    """The VO's app: JSON only, late acks (a dying pilot gives its job back), no results."""
    app = Celery("demo_vo", broker=broker)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
    )

    @app.task(name=JOB, bind=True)
    def analyse(self: Task[Any, Any], job: int, seconds: float) -> int:
        time.sleep(seconds)
        client = redis.Redis.from_url(app.conf.broker_url)
        pilot = self.request.hostname or f"{socket.gethostname()}:{os.getpid()}"
        with client.pipeline() as pipe:
            pipe.sadd(DONE_KEY, job)
            pipe.hincrby(WHERE_KEY, pilot, 1)
            pipe.execute()
        client.close()
        return job

    return app


app = make_app()
