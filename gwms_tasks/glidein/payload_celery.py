"""A Celery worker as the glidein's payload: the VO's queue, an idle timeout and a hard walltime.

Run by ``payload_celery.sh`` as ``payload_celery.py GLIDEIN_CONFIG RESULT_FILE`` with the worker
node's python (``GLIDEIN_CELERY_PYTHON``); standard library and Celery only, Python 3.9
compatible. Glidein parameters (glidein_config keys):

* ``GLIDEIN_CELERY_BROKER`` (required): the VO's broker URL, logged with its password masked.
* ``GLIDEIN_CELERY_QUEUE`` (required): the queue to consume.
* ``GLIDEIN_CELERY_APP`` (required): ``module:attr`` of the VO's Celery app, importable from the
  node's path plus ``GLIDEIN_CELERY_PYTHONPATH`` (``os.pathsep``-separated).
* ``GLIDEIN_CELERY_CONCURRENCY``: tasks at once (1).
* ``GLIDEIN_CELERY_IDLE_TIMEOUT``: leave after this many seconds with no task running or
  received (``GLIDEIN_Max_Idle``, else 1200).
* ``GLIDEIN_CELERY_WALLTIME``: hard limit in seconds (``GLIDEIN_Max_Walltime`` minus
  ``GLIDEIN_Graceful_Shutdown``, else 129600, glideinWMS' default job allowance).

Pool: ``solo`` for one task at a time, ``threads`` above: both run tasks in this process, so the
``task_prerun``/``task_postrun`` signals that count user tasks fire here and a lock is all the
counting needs (prefork children could not be counted from here). ``celery.*`` tasks are
Celery's own and not counted. ``worker_prefetch_multiplier=1`` and ``task_acks_late=True``: a
message is acknowledged after its task ran, so a glidein that dies leaves it unacked and the
broker hands it to another worker (Redis: after the transport's ``visibility_timeout``).

Stopping (:class:`PayloadExit`): idle timeout -> warm shutdown -> 0; hard walltime -> result
written, process ended at once, a running task not waited for -> 124; SIGTERM from outside ->
warm shutdown (the running task finishes) -> 143; no broker connection within the idle timeout
(``Network``), bad parameters (``Config``) or an app that does not import (``VO_Config``) -> 1.
The result file holds ``KEY VALUE`` lines (``reason``, ``jobs``, ``busy_seconds``,
``utilization``, and on failure ``category`` and ``detail``) that payload_celery.sh prints.
"""

from __future__ import annotations

import enum
import importlib
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import Celery, signals

DEFAULT_IDLE_TIMEOUT = 1200.0
DEFAULT_GRACEFUL_SHUTDOWN = 120.0
DEFAULT_WALLTIME = 129600.0
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")
_URL_PASSWORD = re.compile(r"(://[^:@/]*):[^@/]*@")


class PayloadExit(enum.IntEnum):
    """Exit codes of the celery payload (and so of the glidein)."""

    OK = 0
    FAILED = 1
    WALLTIME = 124
    TERMINATED = 143


class StopReason(str, enum.Enum):  # noqa: UP042 (StrEnum is 3.11+; see the module doc)
    """Why the worker stopped."""

    IDLE_TIMEOUT = "idle_timeout"
    WALLTIME = "walltime"
    TERMINATED = "terminated"
    NEVER_CONNECTED = "never_connected"
    WORKER_EXITED = "worker_exited"
    FAILED = "failed"


class Category(str, enum.Enum):  # noqa: UP042 (StrEnum is 3.11+; see the module doc)
    """Failure categories of the glidein's result (the reference §5.4)."""

    CONFIG = "Config"
    VO_CONFIG = "VO_Config"
    NETWORK = "Network"
    WN_RESOURCE = "WN_Resource"


class PayloadFailure(Exception):
    """A categorised failure of the payload."""

    def __init__(self, category: Category, detail: str) -> None:
        super().__init__(f"{category.value}: {detail}")
        self.category = category
        self.detail = detail


@dataclass(frozen=True)
class WorkerSettings:
    """The worker as the glidein parameters ask for it."""

    broker: str
    queue: str
    app_path: str
    python_path: tuple[str, ...]
    concurrency: int
    idle_timeout: float
    walltime: float
    hostname: str

    @property
    def pool(self) -> str:
        return "solo" if self.concurrency == 1 else "threads"


def read_glidein_config(text: str) -> dict[str, str]:
    """``KEY VALUE`` lines to a dict: the first space splits, the last occurrence of a key wins."""
    values: dict[str, str] = {}
    for line in text.split("\n"):
        key, _, value = line.rstrip("\r").partition(" ")
        if key:
            values[key] = value
    return values


def settings_from_glidein_config(values: Mapping[str, str], nodename: str) -> WorkerSettings:
    """The worker settings, or a ``Config`` failure naming every bad or missing parameter."""
    problems: list[str] = []
    required = {}
    for key in ("GLIDEIN_CELERY_BROKER", "GLIDEIN_CELERY_QUEUE", "GLIDEIN_CELERY_APP"):
        required[key] = values.get(key, "").strip()
        if not required[key]:
            problems.append(f"{key}: required, missing or empty")
    app_path = required["GLIDEIN_CELERY_APP"]
    if app_path and not re.fullmatch(r"[\w.]+:[\w.]+", app_path):
        problems.append(f"GLIDEIN_CELERY_APP: expected module:attribute, got {app_path!r}")
    concurrency = _number(values, "GLIDEIN_CELERY_CONCURRENCY", 1.0, problems)
    if concurrency != int(concurrency):
        problems.append(f"GLIDEIN_CELERY_CONCURRENCY: expected an integer, got {concurrency}")
    idle_default = _number(values, "GLIDEIN_Max_Idle", DEFAULT_IDLE_TIMEOUT, problems)
    idle = _number(values, "GLIDEIN_CELERY_IDLE_TIMEOUT", idle_default, problems)
    walltime = _number(values, "GLIDEIN_CELERY_WALLTIME", _walltime(values, problems), problems)
    if problems:
        raise PayloadFailure(Category.CONFIG, "; ".join(problems))
    extra_path = values.get("GLIDEIN_CELERY_PYTHONPATH", "").strip()
    return WorkerSettings(
        broker=required["GLIDEIN_CELERY_BROKER"],
        queue=required["GLIDEIN_CELERY_QUEUE"],
        app_path=app_path,
        python_path=tuple(p for p in extra_path.split(os.pathsep) if p),
        concurrency=int(concurrency),
        idle_timeout=idle,
        walltime=walltime,
        hostname=_hostname(values, nodename),
    )


def _number(values: Mapping[str, str], key: str, default: float, problems: list[str]) -> float:
    raw = values.get(key, "").strip()
    if not raw:
        return default
    try:
        number = float(raw)
    except ValueError:
        number = -1.0
    if not 0 < number < float("inf"):
        problems.append(f"{key}: expected a positive number, got {raw!r}")
        return default
    return number


def _walltime(values: Mapping[str, str], problems: list[str]) -> float:
    """The glidein's walltime less the graceful shutdown, so the payload ends before the site."""
    if not values.get("GLIDEIN_Max_Walltime", "").strip():
        return DEFAULT_WALLTIME
    walltime = _number(values, "GLIDEIN_Max_Walltime", DEFAULT_WALLTIME, problems)
    grace = _number(values, "GLIDEIN_Graceful_Shutdown", DEFAULT_GRACEFUL_SHUTDOWN, problems)
    return walltime - grace if walltime > grace else walltime


def _hostname(values: Mapping[str, str], nodename: str) -> str:
    """``glidein_<entry>_<cluster>.<proc>@<node>``: Flower and the broker show which glidein."""
    entry = values.get("GLIDEIN_Entry_Name", "").strip() or "entry"
    cluster = values.get("CONDORG_CLUSTER", "").strip() or "0"
    proc = values.get("CONDORG_SUBCLUSTER", "").strip() or "0"
    name = _UNSAFE_NAME.sub("_", f"glidein_{entry}_{cluster}.{proc}")
    return f"{name}@{_UNSAFE_NAME.sub('_', nodename) or 'localhost'}"


def load_app(settings: WorkerSettings) -> Any:
    """Import the VO's Celery app and set it up for a glidein, or fail with ``VO_Config``."""
    sys.path[:0] = list(settings.python_path)
    module_name, _, attribute = settings.app_path.partition(":")
    try:
        app: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            app = getattr(app, part)
    except Exception as exc:  # the VO's module may raise anything while importing
        raise PayloadFailure(
            Category.VO_CONFIG, f"cannot import {settings.app_path}: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(app, Celery):
        detail = f"{settings.app_path} is a {type(app).__name__}, not a Celery app"
        raise PayloadFailure(Category.VO_CONFIG, detail)
    app.conf.update(
        broker_url=settings.broker,
        worker_prefetch_multiplier=1,
        task_acks_late=True,
        broker_connection_retry_on_startup=True,
        worker_redirect_stdouts=False,
    )
    return app


class Tracker:
    """Counts user tasks and tells how long the worker has been idle; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.start = time.monotonic()
        self._last_activity = self.start
        self._active: dict[str, float] = {}
        self._jobs = 0
        self._busy = 0.0
        self.connected = False
        self.reason: StopReason | None = None

    def connect(self) -> None:
        for signal_, handler in (
            (signals.task_received, self._on_received),
            (signals.task_prerun, self._on_prerun),
            (signals.task_postrun, self._on_postrun),
            (signals.worker_ready, self._on_ready),
            (signals.worker_shutting_down, self._on_shutting_down),
        ):
            signal_.connect(handler, weak=False)

    def _on_received(self, **_: Any) -> None:
        with self._lock:
            self._last_activity = time.monotonic()

    def _on_prerun(self, task_id: str = "", task: Any = None, **_: Any) -> None:
        if _is_user_task(task):
            with self._lock:
                self._active[task_id] = self._last_activity = time.monotonic()

    def _on_postrun(self, task_id: str = "", task: Any = None, **_: Any) -> None:
        if _is_user_task(task):
            with self._lock:
                now = self._last_activity = time.monotonic()
                self._busy += now - self._active.pop(task_id, now)
                self._jobs += 1

    def _on_ready(self, **_: Any) -> None:
        with self._lock:
            self.connected = True
            self._last_activity = time.monotonic()

    def _on_shutting_down(self, **_: Any) -> None:
        self.claim_stop(StopReason.TERMINATED)

    def claim_stop(self, reason: StopReason, force: bool = False) -> bool:
        """Record why the worker stops; the first reason wins unless ``force``."""
        with self._lock:
            if self.reason is None or force:
                self.reason = reason
                return True
            return False

    def idle_for(self, now: float) -> float | None:
        """Seconds since the last task activity, None while a task runs."""
        with self._lock:
            return None if self._active else now - self._last_activity

    def totals(self, now: float, slots: int) -> tuple[int, float, float]:
        """(jobs, busy seconds, utilization of all slots since start), running tasks included."""
        with self._lock:
            busy = self._busy + sum(now - started for started in self._active.values())
            capacity = max(now - self.start, 1e-9) * slots
            return self._jobs, busy, min(1.0, busy / capacity)


def _is_user_task(task: Any) -> bool:
    return not str(getattr(task, "name", "")).startswith("celery.")


class ResultFile:
    """The result file, written once (the main thread and the watchdog may race to write it)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._written = False

    def write(self, tracker: Tracker, slots: int, failure: PayloadFailure | None = None) -> None:
        with self._lock:
            if self._written:
                return
            self._written = True
            jobs, busy, utilization = tracker.totals(time.monotonic(), slots)
            reason = tracker.reason or StopReason.FAILED
            lines = [f"reason {reason.value}", f"jobs {jobs}", f"busy_seconds {busy:.3f}"]
            lines.append(f"utilization {utilization:.4f}")
            if failure is not None:
                detail = " ".join(failure.detail.split())
                lines += [f"category {failure.category.value}", f"detail {detail}"]
            partial = self._path.with_name(self._path.name + ".partial")
            partial.write_text("\n".join(lines) + "\n", encoding="utf-8")
            partial.replace(self._path)


class Watchdog(threading.Thread):
    """Stops the worker after the idle timeout (warm) or at the walltime (at once)."""

    def __init__(self, settings: WorkerSettings, tracker: Tracker, result: ResultFile) -> None:
        super().__init__(name="payload-watchdog", daemon=True)
        self._settings = settings
        self._tracker = tracker
        self._result = result
        self._tick = max(0.05, min(1.0, settings.idle_timeout / 4, settings.walltime / 4))

    def run(self) -> None:
        settings, tracker = self._settings, self._tracker
        while True:
            time.sleep(self._tick)
            now = time.monotonic()
            if now - tracker.start >= settings.walltime:
                tracker.claim_stop(StopReason.WALLTIME, force=True)
                _log(f"hard walltime of {settings.walltime:g} s reached, leaving now")
                self._exit_now(PayloadExit.WALLTIME)
            idle = tracker.idle_for(now)
            if idle is None or idle < settings.idle_timeout:
                continue
            if not tracker.connected and tracker.claim_stop(StopReason.NEVER_CONNECTED):
                detail = f"no connection to the broker within {settings.idle_timeout:g} s"
                self._exit_now(PayloadExit.FAILED, PayloadFailure(Category.NETWORK, detail))
            if tracker.claim_stop(StopReason.IDLE_TIMEOUT):
                _log(f"idle for {idle:.0f} s, asking the worker for a warm shutdown")
                # Celery's documented warm shutdown; the handler must run in the main thread.
                signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGTERM)

    def _exit_now(self, code: PayloadExit, failure: PayloadFailure | None = None) -> None:
        self._result.write(self._tracker, self._settings.concurrency, failure)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(code))


def run_worker(settings: WorkerSettings, app: Any, result: ResultFile) -> PayloadExit:
    """Run the worker until it stops; write the result; return the exit code."""
    tracker = Tracker()
    tracker.connect()
    Watchdog(settings, tracker, result).start()
    masked = _URL_PASSWORD.sub(r"\1:****@", settings.broker)
    _log(
        f"worker {settings.hostname} on queue {settings.queue} of {masked}, pool "
        f"{settings.pool} x{settings.concurrency}, idle timeout {settings.idle_timeout:g} s, "
        f"walltime {settings.walltime:g} s"
    )
    worker = app.Worker(
        hostname=settings.hostname,
        queues=[settings.queue],
        pool_cls=settings.pool,
        concurrency=settings.concurrency,
        loglevel="INFO",
        quiet=True,
        without_heartbeat=True,
        without_gossip=True,
        without_mingle=True,
    )
    worker.start()
    tracker.claim_stop(StopReason.WORKER_EXITED)
    failure = None
    if tracker.reason is StopReason.WORKER_EXITED and worker.exitcode:
        detail = f"the Celery worker stopped with code {worker.exitcode}"
        failure = PayloadFailure(Category.WN_RESOURCE, detail)
    result.write(tracker, settings.concurrency, failure)
    if failure is not None:
        return PayloadExit.FAILED
    return PayloadExit.TERMINATED if tracker.reason is StopReason.TERMINATED else PayloadExit.OK


def _log(message: str) -> None:
    print(f"payload_celery: {message}", file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    """``payload_celery.py GLIDEIN_CONFIG RESULT_FILE``: run the payload, return its exit code."""
    if len(argv) != 2:
        _log("usage: payload_celery.py GLIDEIN_CONFIG RESULT_FILE")
        return int(PayloadExit.FAILED)
    result = ResultFile(Path(argv[1]))
    tracker = Tracker()
    try:
        values = read_glidein_config(Path(argv[0]).read_text(encoding="utf-8"))
        settings = settings_from_glidein_config(values, socket.gethostname())
        app = load_app(settings)
    except (OSError, UnicodeError) as exc:
        failure = PayloadFailure(Category.WN_RESOURCE, f"cannot read {argv[0]}: {exc}")
    except PayloadFailure as exc:
        failure = exc
    else:
        return int(run_worker(settings, app, result))
    _log(f"{failure.category.value}: {failure.detail}")
    tracker.claim_stop(StopReason.FAILED)
    result.write(tracker, 1, failure)
    return int(PayloadExit.FAILED)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
