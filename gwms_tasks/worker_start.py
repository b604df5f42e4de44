"""Start the factory's Celery processes: the factory worker, a user worker, and beat.

``gwms worker factory``, ``gwms worker user NAME`` and ``gwms beat`` call these; ``workers/``
has the systemd units and the command lines for a fleet of machines. Each function blocks
until the process is asked to stop and returns Celery's exit code.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from celery import Celery

from gwms_tasks.celery_app import DEFAULT_INCLUDE, make_celery
from gwms_tasks.config_file import read_config
from gwms_tasks.core.config import FactoryConfig
from gwms_tasks.errors import PermanentError
from gwms_tasks.private_files import ensure_private_dir
from gwms_tasks.privileges import ROOT_UID, drop_to_user, preload_stdlib
from gwms_tasks.queues import FACTORY_QUEUE, user_queue
from gwms_tasks.schedule import reload

FACTORY_HOSTNAME: Final = "factory@%h"
USER_WORKER_CONCURRENCY: Final = 2
"""Submits, releases and removals of one user are few and mostly wait on the grid backend."""


def user_hostname(username: str) -> str:
    """Celery node name of ``username``'s worker (``%h`` is the machine's host name)."""
    return f"user-{username}@%h"


def worker_argv(queue: str, hostname: str, concurrency: int, loglevel: str) -> list[str]:
    """``celery worker`` arguments consuming only ``queue``.

    Raises:
        PermanentError: ``concurrency`` is below 1.
    """
    if concurrency < 1:
        raise PermanentError(f"worker concurrency must be at least 1, got {concurrency}")
    return ["worker", "-Q", queue, "-n", hostname, "-c", str(concurrency), "-l", loglevel]


def start_factory_worker(
    config_path: Path,
    concurrency: int,
    loglevel: str,
    *,
    include: Sequence[str] = DEFAULT_INCLUDE,
) -> int:
    """Run the factory worker: find-work, monitor, advertise, credentials, aggregation.

    Raises:
        ConfigError: the config file is unreadable or invalid.
        PermanentError: a bad ``concurrency``.
    """
    config = read_config(config_path)
    argv = worker_argv(FACTORY_QUEUE, FACTORY_HOSTNAME, concurrency, loglevel)
    return _run(make_celery(config, include=include), argv)


def start_user_worker(
    config_path: Path,
    username: str,
    loglevel: str,
    *,
    concurrency: int = USER_WORKER_CONCURRENCY,
    include: Sequence[str] = DEFAULT_INCLUDE,
    prepare: Callable[[FactoryConfig], None] | None = None,
) -> int:
    """Run ``username``'s worker: submit, release, remove and store credentials, as that user.

    The config is read first (as the starting user, so it may stay readable by root only),
    then the process becomes ``username`` for good, and only then is the Celery app built and
    the queue ``gwms.user.<username>`` consumed. As root, the user's private directory under
    ``client_proxies_base_dir`` is made first (owned by the user, 0700), and the standard library
    is imported up front when the user could not read it later (see ``preload_stdlib``).
    ``prepare`` runs after the drop, before consuming (the CLI publishes the worker's key there).

    Raises:
        ConfigError: the config file is unreadable or invalid.
        PermanentError: no frontend security class maps to ``username``, or the process
            cannot become ``username`` (see :func:`~gwms_tasks.privileges.drop_to_user`).
    """
    config = read_config(config_path)
    queue = user_queue(username)
    if username not in config.local_users():
        known = ", ".join(sorted(config.local_users()))
        raise PermanentError(
            f"{config_path}: no frontend security class maps to local user {username!r} "
            f"(users in the config: {known})"
        )
    argv = worker_argv(queue, user_hostname(username), concurrency, loglevel)
    if os.geteuid() == ROOT_UID:
        base = Path(config.factory.client_proxies_base_dir)
        base.mkdir(mode=0o755, parents=True, exist_ok=True)
        ensure_private_dir(base / f"user_{username}", username)
        preload_stdlib()
    drop_to_user(username)
    if prepare is not None:
        prepare(config)
    return _run(make_celery(config, include=include), argv)


def start_beat(config_path: Path, loglevel: str) -> int:
    """Run celery beat with RedBeat, after syncing the schedule to the config file.

    Every beat host of a factory must use the same config: a starting beat (the standby of an
    HA pair too) applies its file, exactly as ``gwms reload`` would.

    Raises:
        ConfigError: the config file is unreadable or invalid; nothing was changed.
        TransientError: the state Redis could not be reached.
    """
    report = reload(config_path)
    return _run(make_celery(report.config, include=()), ["beat", "-l", loglevel])


def _run(app: Celery, argv: list[str]) -> int:
    code = app.start(argv=argv)
    return int(code or 0)
