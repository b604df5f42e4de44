"""A running factory for integration tests: real Redis, real `gwms worker` processes.

The factory worker and one user worker per frontend run as separate processes started with the
real command line (`python -m gwms_tasks.cli worker ...`); user workers run as created Unix
users (root only). Frontends publish their requests through the Redis dashboard as their own
ACL users, exactly as a real frontend would.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import yaml

from gwms_tasks.adapters.redis_admin import add_frontend_user
from gwms_tasks.adapters.redis_dashboard import RedisDashboard
from gwms_tasks.celery_app import make_celery
from gwms_tasks.config_file import read_config
from gwms_tasks.core.ads import AdType
from gwms_tasks.core.classad_text import AdValue
from gwms_tasks.core.crypto import FactoryKey
from gwms_tasks.core.model import Glidein
from gwms_tasks.queues import FACTORY_QUEUE, TaskName
from gwms_tasks.runtime import Runtime
from gwms_tasks.services.staging_build import build_staging, staging_spec_from_config
from tests.builders import FrontendSide
from tests.integration.celery_app_probe import Process, broker_db, start_process

FACTORY = "rt_factory"
GLIDEIN = "rt_instance"
PYTHON = sys.executable


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` every 0.1 s; fail after ``timeout`` seconds naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


@dataclass
class FrontendHandle:
    """A test frontend: its config name, identity, local user and its dashboard writer."""

    name: str
    identity: str
    username: str
    side: FrontendSide
    dashboard: RedisDashboard


def factory_config(
    base: Path, redis_url: str, users: Mapping[str, str], entries: Mapping[str, Any]
) -> dict[str, Any]:
    """A factory config: frontends ``fe1``, ``fe2``... (class ``main``) served by ``users``."""
    return {
        "factory": {
            "name": FACTORY,
            "glidein_name": GLIDEIN,
            "web_url": "http://127.0.0.1:9/stage",
            "stage_dir": str(base / "stage"),
            "work_dir": str(base / "work"),
            "log_dir": str(base / "log"),
            "client_log_base_dir": str(base / "client_log"),
            "client_proxies_base_dir": str(base / "client_proxies"),
            "loop_delay": 60,
            "advertise_delay": 5,
        },
        "redis": {"state_url": redis_url, "broker_url": broker_db(redis_url)},
        "dashboard": {"kind": "redis", "url": broker_db(redis_url, 2), "ad_lifetime": 900},
        "frontends": {
            name: {"identity": f"{name}_id", "security_classes": {"main": user}}
            for name, user in users.items()
        },
        "entries": dict(entries),
    }


@dataclass
class RunningFactory:
    """A factory whose processes run until :meth:`stop`."""

    base: Path
    redis_url: str
    config_path: Path
    users: Mapping[str, str]
    processes: list[Process] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.config = read_config(self.config_path)
        self.runtime = Runtime(self.config)
        self.app = make_celery(self.config, include=())

    # processes ------------------------------------------------------------------------------

    def _gwms(self, name: str, *args: str) -> Process:
        argv = [PYTHON, "-m", "gwms_tasks.cli", *args, "--config", str(self.config_path)]
        process = start_process(argv, self.base / "log" / f"{name}.log", {})
        self.processes.append(process)
        return process

    def start_factory_worker(self, watch: bool = False) -> Process:
        args = ["worker", "factory", "-c", "2"] + ([] if watch else ["--no-watch"])
        process = self._gwms("factory", *args)
        key = Path(self.config.factory.work_dir) / "rsa.key"
        wait_until(key.exists, 30, f"the factory key ({process.output()[-2000:]})")
        return process

    def start_user_worker(self, username: str) -> Process:
        process = self._gwms(f"user-{username}", "worker", "user", username, "-c", "2")
        state = self.runtime.state_client
        key = self.runtime.keys.user_public_key(username)
        wait_until(
            lambda: bool(state.exists(key)),
            60,
            f"{username}'s worker key ({process.output()[-2000:]})",
        )
        return process

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop(timeout=20)
        self.processes.clear()

    # frontends ------------------------------------------------------------------------------

    def frontend(self, name: str) -> FrontendHandle:
        """Create ``name``'s dashboard ACL user and connect as it."""
        admin = self.runtime.dashboard_client()
        identity = f"{name}_id"
        url = add_frontend_user(admin, self.runtime.keys, identity, factory_writers=(FACTORY,))
        client = redis.Redis.from_url(url)
        side = FrontendSide(
            self.runtime.keyring().current,
            identity=identity,
            security_name=name,
            security_class="main",
            client_name=f"{name}.main",
        )
        dashboard = RedisDashboard(client, self.runtime.keys, identity)
        return FrontendHandle(name, identity, self.users[name], side, dashboard)

    def publish(self, fe: FrontendHandle, entry: str, **request: Any) -> dict[str, AdValue]:
        ad = fe.side.request(entry, factory=FACTORY, glidein=GLIDEIN, **request)
        fe.dashboard.advertise(AdType.GLIDECLIENT, [ad])
        return ad

    # driving and observing -----------------------------------------------------------------

    def find_work(self, entry: str) -> None:
        """What beat does every loop (tests do not wait for it)."""
        self.app.send_task(str(TaskName.FIND_WORK), kwargs={"entry": entry}, queue=FACTORY_QUEUE)

    def glideins(self, entry: str) -> list[Glidein]:
        return self.runtime.backend_for(entry).query()

    def by_client(self, entry: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for glidein in self.glideins(entry):
            counts[glidein.client] = counts.get(glidein.client, 0) + 1
        return counts

    def settled(self, entry: str) -> bool:
        """No submit of the entry is still in flight."""
        return not self.runtime.state.inflight.list(entry)

    def factory_key(self) -> FactoryKey:
        return self.runtime.keyring().current


def make_base() -> Path:
    """A directory outside pytest's private tmp: dropped user workers must reach into it."""
    base = Path(tempfile.mkdtemp(prefix="gwms-rt-"))
    base.chmod(0o755)
    (base / "log").mkdir()
    return base


@dataclass
class FactoryFixture:
    """Builds a :class:`RunningFactory` and cleans up after it."""

    redis_url: str
    users: Mapping[str, str]
    running: list[RunningFactory] = field(default_factory=list)

    def build(self, entries: Mapping[str, Any]) -> RunningFactory:
        base = make_base()
        data = factory_config(base, self.redis_url, self.users, entries)
        path = base / "factory.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        config = read_config(path)
        build_staging(staging_spec_from_config(config), Path(config.factory.stage_dir))
        factory = RunningFactory(base, self.redis_url, path, self.users)
        self.running.append(factory)
        return factory

    def close(self) -> Iterator[str]:
        """Stop everything; yield the logs of the processes (for a failing test's report)."""
        for factory in self.running:
            logs = {p.log.name: p.output() for p in factory.processes}
            factory.stop()
            for name, text in logs.items():
                yield f"--- {name}\n{text[-3000:]}"
            shutil.rmtree(factory.base, ignore_errors=True)


def running_as_root() -> bool:
    return os.geteuid() == 0
