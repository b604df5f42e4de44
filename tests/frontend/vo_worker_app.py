"""A VO's Celery app as a glidein's worker runs it (late acks, prefetch 1), for the tests.

``vo.wait_for_release(key)`` runs until the test pushes to the Redis list ``key`` (or 20 s pass),
so a test decides exactly when a task stops running, without sleeping.
"""

from __future__ import annotations

import os

import redis
from celery import Celery

WAIT_FOR_RELEASE = "vo.wait_for_release"
BROKER_ENV = "VO_BROKER_URL"

app = Celery("vo_worker", broker=os.environ.get(BROKER_ENV))
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
)


@app.task(name=WAIT_FOR_RELEASE)
def wait_for_release(key: str, timeout: float = 20.0) -> bool:
    client = redis.Redis.from_url(str(app.conf.broker_url))
    try:
        return client.blpop([key], timeout=timeout) is not None
    finally:
        client.close()
