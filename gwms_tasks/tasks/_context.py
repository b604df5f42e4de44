"""What a task needs from its process: the runtime of its app, and who the process runs as.

One :class:`~gwms_tasks.runtime.Runtime` per (process, app), created at the first task; pool
processes forked later get their own (redis-py connection pools reconnect after a fork).
"""

from __future__ import annotations

import os
import pwd
import threading
import time
from typing import Final

from celery import Celery

from gwms_tasks.adapters.celery_dispatcher import CeleryDispatcher
from gwms_tasks.celery_app import factory_config_of
from gwms_tasks.runtime import Runtime
from gwms_tasks.services.deps import FactoryDeps
from gwms_tasks.services.submit import UserDeps

START_TIME: Final = int(time.time())
"""When this worker process started (the ads' ``DaemonStartTime``)."""

_runtimes: dict[tuple[int, int], Runtime] = {}
_lock = threading.Lock()


def runtime_of(app: Celery) -> Runtime:
    """This process's runtime for ``app``."""
    key = (os.getpid(), id(app))
    with _lock:
        runtime = _runtimes.get(key)
        if runtime is None:
            runtime = _runtimes[key] = Runtime(factory_config_of(app))
        return runtime


def factory_deps(app: Celery) -> FactoryDeps:
    """The factory-side ports, orders sent through ``app``'s broker."""
    return runtime_of(app).factory_deps(CeleryDispatcher(app))


def process_username() -> str:
    """The Unix user this process runs as (a user worker has dropped to it before any task)."""
    return pwd.getpwuid(os.geteuid()).pw_name


def user_deps(app: Celery) -> UserDeps:
    """The ports of the user worker this process is."""
    return runtime_of(app).user_deps(process_username())
