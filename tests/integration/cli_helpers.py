"""Helpers of the operator CLI tests: a factory config on the test Redis, and a running factory.

:class:`Factory` is a real factory in miniature: config file, built staging area, factory key,
a frontend connected to the Redis dashboard as its own ACL user (through the URL that
``gwms dashboard add-frontend`` printed), a published user-worker key and the simulated
backend. Its find-work is the real service; orders go to a memory dispatcher, and the user
worker's side runs in the test process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import yaml
from click.testing import CliRunner, Result

from gwms_tasks.adapters.memory_dispatcher import MemoryDispatcher
from gwms_tasks.adapters.redis_dashboard import RedisDashboard
from gwms_tasks.adapters.user_keys import RedisUserKeys
from gwms_tasks.cli import gwms
from gwms_tasks.config_file import read_config
from gwms_tasks.core.ads import AdType
from gwms_tasks.core.envelope import UserKey
from gwms_tasks.keys import Keys
from gwms_tasks.runtime import Runtime
from gwms_tasks.services.deps import FactoryDeps
from gwms_tasks.services.find_work import FindWorkResult, find_work
from gwms_tasks.services.orders import SubmitOrder
from gwms_tasks.services.submit import UserDeps
from tests.builders import FrontendSide

FACTORY = "test_factory"
ENTRY = "ce1"
LOCAL_ENTRY = "local1"
SITE = "LOCAL_T"
FRONTEND = "fe1"
IDENTITY = "fe1@frontend.example.org"
CLIENT = "fe1.main"
USER = "fe_one"
CHECK_SCRIPT = "#!/bin/sh\nexit 0\n"


def broker_url(state_url: str) -> str:
    return state_url.rsplit("/", 1)[0] + "/1"


def write_config(tmp: Path, state_url: str, **factory: Any) -> Path:
    """A factory config in ``tmp/etc`` with everything on disk under ``tmp``.

    Entries: ``ce1`` (simulated) and ``local1`` (local site ``LOCAL_T``, 2 slots); one
    operator file given by a path relative to the config's directory.
    """
    etc = tmp / "etc"
    (etc / "files").mkdir(parents=True, exist_ok=True)
    (etc / "files" / "site_check.sh").write_text(CHECK_SCRIPT)
    data: dict[str, Any] = {
        "factory": {
            "name": FACTORY,
            "web_url": "http://127.0.0.1:8080/stage",
            "stage_dir": str(tmp / "stage"),
            "work_dir": str(tmp / "work"),
            "log_dir": str(tmp / "log"),
            "client_log_base_dir": str(tmp / "client_log"),
            "client_proxies_base_dir": str(tmp / "proxies"),
            "downtimes_file": str(tmp / "downtimes"),
            **factory,
        },
        "redis": {"state_url": state_url, "broker_url": broker_url(state_url)},
        "dashboard": {"kind": "redis", "url": state_url},
        "frontends": {
            FRONTEND: {"identity": IDENTITY, "security_classes": {"main": USER}},
            "fe2": {"identity": "fe2@frontend.example.org", "security_classes": {"prod": "fe_two"}},
        },
        "files": [{"path": "files/site_check.sh", "type": "exec"}],
        "entries": {
            ENTRY: {
                "auth_method": "scitoken",
                "backend": {"kind": "simulated", "queue_time": 3600},
                "limits": {"per_entry": {"max_idle": 8}},
            },
            LOCAL_ENTRY: {
                "auth_method": "scitoken",
                "backend": {"kind": "local_site", "site": SITE, "slots": 2},
            },
        },
    }
    path = etc / "factory.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run(*args: str, config: Path | None = None) -> Result:
    """``gwms ARGS --config CONFIG`` in-process."""
    argv = [*args, *(["--config", str(config)] if config is not None else [])]
    return CliRunner().invoke(gwms, argv, catch_exceptions=False)


@dataclass
class Factory:
    """A factory on the test Redis, one frontend, one user worker run by the test."""

    config_path: Path
    runtime: Runtime
    dispatcher: MemoryDispatcher
    deps: FactoryDeps
    frontend: FrontendSide
    frontend_dashboard: RedisDashboard
    frontend_client: redis.Redis
    frontend_url: str
    user: UserDeps

    @classmethod
    def start(cls, tmp: Path, state_url: str) -> Factory:
        config_path = write_config(tmp, state_url)
        built = run("staging", "build", config=config_path)
        assert built.exit_code == 0, built.output
        added = run("dashboard", "add-frontend", FRONTEND, config=config_path)
        assert added.exit_code == 0, added.output
        url = added.stdout.strip()
        runtime = Runtime(read_config(config_path))
        keyring = runtime.create_factory_key()
        user_key = UserKey.generate()
        RedisUserKeys(runtime.state_client, runtime.keys).publish(USER, user_key.public_pem)
        dispatcher = MemoryDispatcher()
        frontend = FrontendSide(
            keyring.current,
            identity=IDENTITY,
            security_name=FRONTEND,
            security_class="main",
            client_name=CLIENT,
        )
        user = UserDeps(
            username=USER,
            state=runtime.state,
            backend_for=runtime.backend_for,
            user_key=user_key,
            credential_dir=tmp / "proxies" / f"user_{USER}",
            clock=time.time,
        )
        fe_client = redis.Redis.from_url(url)
        fe_dashboard = RedisDashboard(fe_client, Keys(), writer=IDENTITY)
        return cls(
            config_path,
            runtime,
            dispatcher,
            runtime.factory_deps(dispatcher),
            frontend,
            fe_dashboard,
            fe_client,
            url,
            user,
        )

    def request(self, idle: int, max_glideins: int = 20) -> None:
        """The frontend publishes its request for ce1, as its own ACL user."""
        ad = self.frontend.request(ENTRY, idle=idle, max_glideins=max_glideins, factory=FACTORY)
        self.frontend_dashboard.advertise(AdType.GLIDECLIENT, [ad])

    def find_work(self, run_id: str) -> FindWorkResult:
        return find_work(self.deps, ENTRY, run_id)

    def close(self) -> None:
        self.frontend_client.close()

    def take_orders(self) -> list[SubmitOrder]:
        return [SubmitOrder.from_json(raw) for raw in self.dispatcher.submits.pop(USER, [])]
