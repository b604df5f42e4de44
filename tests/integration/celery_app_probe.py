"""Helpers of the Celery infrastructure tests: stand-in tasks, a config, real processes.

The stand-in tasks take every name of :class:`~gwms_tasks.queues.TaskName` and only record
who ran them, where and as whom (a JSON line in the Redis list :data:`RUNS_KEY` of
``GWMS_PROBE_REDIS_URL``): the real tasks are tested with the services they call. Called with
``die_once=<token>``, a task kills its own process the first time it runs with that token.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import yaml
from celery import Task, shared_task

from gwms_tasks.celery_app import factory_config_of
from gwms_tasks.privileges import preload_stdlib, python_readable_by_others
from gwms_tasks.queues import TaskName

__all__ = ["preload_stdlib", "python_readable_by_others"]

PROBE_URL_ENV = "GWMS_PROBE_REDIS_URL"
RUNS_KEY = "probe:runs"
PROBE_MODULE = __name__
REPO = Path(__file__).resolve().parents[2]


def _record(task: Task, **kwargs: Any) -> None:
    client = redis.Redis.from_url(os.environ[PROBE_URL_ENV])
    marker = kwargs.get("die_once")
    if marker and client.set(f"probe:died:{marker}", 1, nx=True):
        os.kill(os.getpid(), signal.SIGKILL)  # the pool process dies in the middle of the task
    run = {
        "task": task.name,
        "kwargs": kwargs,
        "uid": os.getuid(),
        "queue": (task.request.delivery_info or {}).get("routing_key"),
        "hostname": task.request.hostname,
        "expires": task.request.expires,
        "factory": factory_config_of(task.app).factory.name,
    }
    client.rpush(RUNS_KEY, json.dumps(run))
    client.close()


def _register() -> None:
    for name in TaskName:
        shared_task(name=str(name), bind=True)(_record)


_register()


def runs(client: redis.Redis) -> list[dict[str, Any]]:
    """Every recorded run, oldest first."""
    return [json.loads(raw) for raw in client.lrange(RUNS_KEY, 0, -1)]


def wait_for(
    condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.1
) -> None:
    """Poll ``condition`` until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def config_yaml(
    *,
    state_url: str,
    broker_url: str,
    users: Mapping[str, str] | None = None,
    entries: Iterable[str] = ("ce1",),
    loop_delay: float = 60,
    advertise_delay: int = 5,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """A valid factory config: one frontend whose security classes map to ``users``
    (default: class ``main`` served by ``fe_one``)."""
    data: dict[str, Any] = {
        "factory": {
            "name": "test_factory",
            "web_url": "http://127.0.0.1:8080/stage",
            "stage_dir": "/srv/stage",
            "work_dir": "/srv/work",
            "log_dir": "/srv/log",
            "client_log_base_dir": "/srv/client_log",
            "client_proxies_base_dir": "/srv/client_proxies",
            "loop_delay": loop_delay,
            "advertise_delay": advertise_delay,
        },
        "redis": {"state_url": state_url, "broker_url": broker_url},
        "dashboard": {
            "kind": "redis",
            "url": state_url,
            "ad_lifetime": max(900, int(loop_delay * advertise_delay) + 1),
        },
        "frontends": {
            "fe1": {
                "identity": "fe1@frontend.example.org",
                "security_classes": dict(users or {"main": "fe_one"}),
            }
        },
        "entries": {
            name: {"auth_method": "scitoken", "backend": {"kind": "simulated"}} for name in entries
        },
        **(extra or {}),
    }
    return yaml.safe_dump(data, sort_keys=False)


def broker_db(state_url: str, db: int = 1) -> str:
    """The same Redis server as ``state_url``, another database (the broker's)."""
    return state_url.rsplit("/", 1)[0] + f"/{db}"


@dataclass
class Process:
    """A child process of a test, with its output in a log file."""

    popen: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def start_process(argv: list[str], log: Path, env: Mapping[str, str]) -> Process:
    """Run ``argv`` from the repository root, with this repository importable."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **env}
    with log.open("wb") as out:
        popen = subprocess.Popen(argv, cwd=REPO, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    return Process(popen, log)


def start_python(code: str, log: Path, env: Mapping[str, str]) -> Process:
    """Run ``code`` in a new interpreter of this virtualenv."""
    return start_process([sys.executable, "-c", code], log, env)


def start_celery(args: list[str], log: Path, env: Mapping[str, str]) -> Process:
    """Run this virtualenv's ``celery`` command line."""
    return start_process([str(Path(sys.executable).with_name("celery")), *args], log, env)


TEST_USER_PREFIX = "gwmst"


def can_create_users() -> bool:
    """True when this process may create Unix users (root, with useradd/userdel installed)."""
    return os.geteuid() == 0 and all(shutil.which(tool) for tool in ("useradd", "userdel"))


@contextlib.contextmanager
def temporary_users(count: int) -> Iterator[list[str]]:
    """Create ``count`` system users (own group, no home, no shell); remove them afterwards."""
    names = [f"{TEST_USER_PREFIX}{secrets.token_hex(4)}{i}" for i in range(count)]
    created: list[str] = []
    try:
        for name in names:
            subprocess.run(
                ["useradd", "-r", "-M", "-U", "-s", "/usr/sbin/nologin", name],
                check=True,
                capture_output=True,
            )
            created.append(name)
        yield names
    finally:
        for name in created:
            subprocess.run(["userdel", name], check=False, capture_output=True)


def run_in_child(action: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``action`` in a forked child; return its JSON-able result, or the error it raised.

    The child reports ``{"error": "<class>: <message>"}`` for an exception, so a test can
    check refusals made after privileges were dropped, without touching the test process.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        os.close(read_fd)
        try:
            result = action()
        except BaseException as exc:
            result = {"error": f"{type(exc).__name__}: {exc}"}
        with os.fdopen(write_fd, "w") as out:
            out.write(json.dumps(result))
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as source:
        text = source.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, f"child failed: {text}"
    return dict(json.loads(text))
