"""A VO's Celery application, as a VO would put it on its worker nodes (used by test_payloads).

The glidein imports it as ``vo_app:app`` from ``GLIDEIN_CELERY_PYTHONPATH``; the broker comes from
the glidein (``GLIDEIN_CELERY_BROKER``), the result backend from ``VO_APP_RESULT_BACKEND`` in the
environment, as a VO's own configuration would provide it.
"""

from __future__ import annotations

import os
import time

from celery import Celery

ADD = "vo_app.add"
SLEEP_FOR = "vo_app.sleep_for"


def make_app(broker: str | None = None, backend: str | None = None) -> Celery:
    """The VO's app: JSON only, two tasks."""
    app = Celery("vo_app", broker=broker, backend=backend)
    app.conf.update(task_serializer="json", accept_content=["json"], result_serializer="json")

    @app.task(name=ADD)
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name=SLEEP_FOR)
    def sleep_for(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    return app


app = make_app(backend=os.environ.get("VO_APP_RESULT_BACKEND"))
