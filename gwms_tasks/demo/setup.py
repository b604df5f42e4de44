"""The demo's world on one machine: directories, ports, the demo user, and both config files.

Everything lives under one directory (``.demo/`` of the checkout by default), rebuilt at each
run: the embedded Redis's data, the factory's stage, work and log directories, the frontend's
stage and its token files, and every process's log.
"""

from __future__ import annotations

import getpass
import os
import pwd
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import yaml

from gwms_tasks.embedded_redis import free_port

FACTORY: Final = "demo_factory"
GLIDEIN: Final = "demo_instance"
FRONTEND: Final = "demo_vo"
GROUP: Final = "main"
CLIENT: Final = f"{FRONTEND}.{GROUP}"
ROOT_DEMO_USER: Final = "gwmsdemo"
VO_QUEUE: Final = "vo_jobs"
REPO: Final = Path(__file__).resolve().parents[2]
SITES: Final = {
    # entry: (site, slots, hold fraction)
    "site_a": ("DEMO_SITE_A", 3, 0.0),
    "site_b": ("DEMO_SITE_B", 2, 0.25),
}


@dataclass(frozen=True)
class DemoLayout:
    """Where everything of one demo run is."""

    base: Path
    redis_port: int
    web_port: int
    frontend_web_port: int
    flower_port: int
    username: str
    idle_timeout: int
    redis_password: str = ""
    vo_redis_port: int = 0

    def db(self, number: int) -> str:
        """The URL of database ``number`` as the ``default`` user (with its password, if any)."""
        credentials = f":{quote(self.redis_password, safe='')}@" if self.redis_password else ""
        return f"redis://{credentials}127.0.0.1:{self.redis_port}/{number}"

    @property
    def state_url(self) -> str:
        return self.db(0)

    @property
    def broker_url(self) -> str:
        return self.db(1)

    @property
    def dashboard_url(self) -> str:
        return self.db(2)

    @property
    def frontend_broker_url(self) -> str:
        return self.db(4)

    @property
    def vo_broker_url(self) -> str:
        """The VO's own broker: a Redis of its own, not the factory's.

        Its URL goes to the pilots as a glidein parameter (visible on their command line), so
        it must not open the factory's Redis; a real VO would give pilots a queue-only account.
        """
        return f"redis://127.0.0.1:{self.vo_redis_port}/0"

    @property
    def factory_config(self) -> Path:
        return self.base / "factory.yaml"

    @property
    def frontend_config(self) -> Path:
        return self.base / "frontend.yaml"

    @property
    def logs(self) -> Path:
        return self.base / "logs"

    @property
    def frontend_stage(self) -> Path:
        return self.base / "frontend_stage"

    @property
    def monitoring_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}/"

    @property
    def flower_url(self) -> str:
        return f"http://127.0.0.1:{self.flower_port}/"


def demo_user() -> str:
    """The local user the demo frontend's security class maps to.

    As root: a system user ``gwmsdemo`` (created once, kept: user workers never run as root).
    Otherwise: the user running the demo (its user worker needs no privilege change).
    """
    if os.geteuid() != 0:
        return getpass.getuser()
    try:
        pwd.getpwnam(ROOT_DEMO_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "-r", "-M", "-U", "-s", "/usr/sbin/nologin", ROOT_DEMO_USER],
            check=True,
            capture_output=True,
        )
    return ROOT_DEMO_USER


def make_layout(base: Path, idle_timeout: int) -> DemoLayout:
    """A fresh demo directory (any previous run's is removed), free ports, a Redis password."""
    if base.exists():
        shutil.rmtree(base)
    base.mkdir(parents=True)
    base.chmod(0o755)  # the demo user's worker reaches its directory below
    layout = DemoLayout(
        base=base,
        redis_port=free_port(),
        web_port=free_port(),
        frontend_web_port=free_port(),
        flower_port=free_port(),
        username=demo_user(),
        idle_timeout=idle_timeout,
        # Without it any local process could write the dashboard under a frontend's name.
        redis_password=secrets.token_urlsafe(24),
    )
    layout.logs.mkdir()
    layout.frontend_stage.mkdir()
    (base / "glideins").mkdir()  # the glideins' work directories (the entries' startup_dir)
    return layout


def factory_config(layout: DemoLayout) -> dict[str, Any]:
    """Two local sites (one holding a quarter of its glideins), one frontend."""
    base = layout.base
    entries = {}
    for entry, (site, slots, hold) in SITES.items():
        entries[entry] = {
            "auth_method": "scitoken",
            "backend": {"kind": "local_site", "slots": slots, "hold_fraction": hold, "site": site},
            "startup_dir": str(base / "glideins"),
            "verbosity": "std",
            "attributes": {
                "GLIDEIN_Site": {"value": site},
                "GLIDEIN_CPUS": {"value": 1},
                "GLIDEIN_PAYLOAD": {"value": "celery"},
                "GLIDEIN_CELERY_PYTHON": {"value": sys.executable, "publish": False},
            },
            "limits": {
                "per_entry": {"max_idle": 6, "max_held": 3, "max_glideins": 10},
                "default_per_frontend": {"max_idle": 6, "max_held": 3, "max_glideins": 10},
            },
            "lifetime": {"retire_time": 300, "max_idle": layout.idle_timeout},
        }
    return {
        "factory": {
            "name": FACTORY,
            "glidein_name": GLIDEIN,
            "web_url": f"http://127.0.0.1:{layout.web_port}/factory/stage",
            "stage_dir": str(base / "stage"),
            "work_dir": str(base / "work"),
            "log_dir": str(base / "log"),
            "client_log_base_dir": str(base / "client_log"),
            "client_proxies_base_dir": str(base / "client_proxies"),
            "loop_delay": 5,
            "advertise_delay": 1,
        },
        "redis": {"state_url": layout.state_url, "broker_url": layout.broker_url},
        "dashboard": {"kind": "redis", "url": layout.dashboard_url, "ad_lifetime": 120},
        "web": {"listen_host": "127.0.0.1", "listen_port": layout.web_port, "public_read": True},
        "flower": {"port": layout.flower_port},
        "frontends": {
            FRONTEND: {"identity": FRONTEND, "security_classes": {"pilot": layout.username}},
        },
        "entries": entries,
    }


def frontend_config(layout: DemoLayout, dashboard_url: str) -> dict[str, Any]:
    """One group whose jobs are Celery tasks of the demo VO app."""
    token = layout.base / "frontend_tokens" / "demo.scitoken"
    token.parent.mkdir(mode=0o700, exist_ok=True)
    token.write_text("eyJhbGciOiJub25lIn0.eyJzdWIiOiJkZW1vIn0.demo-signature\n")
    token.chmod(0o600)
    return {
        "frontend": {"name": FRONTEND, "identity": FRONTEND, "loop_delay": 5},
        "dashboard": {"url": dashboard_url},
        "factories": [{"name": FACTORY, "glidein_name": GLIDEIN, "identity": FACTORY}],
        "celery": {"broker_url": layout.frontend_broker_url},
        "web": {
            "url": f"http://127.0.0.1:{layout.frontend_web_port}/frontend/stage",
            "stage_dir": str(layout.frontend_stage),
        },
        "groups": {
            GROUP: {
                "job_source": {
                    "kind": "celery",
                    "broker_url": layout.vo_broker_url,
                    "queue": VO_QUEUE,
                    "attributes": {"RequestCpus": 1},
                },
                "entry_constraint": "GLIDEIN_Site =!= undefined",
                "match": "job.RequestCpus <= entry.GLIDEIN_CPUS",
                "credentials": [
                    {
                        "id": "demo_token",
                        "path": str(token),
                        "type": "scitoken",
                        "security_class": "pilot",
                    }
                ],
                "params": {
                    "GLIDEIN_CELERY_BROKER": layout.vo_broker_url,
                    "GLIDEIN_CELERY_QUEUE": VO_QUEUE,
                    "GLIDEIN_CELERY_APP": "gwms_tasks.demo.vo:app",
                    "GLIDEIN_CELERY_PYTHONPATH": str(REPO),
                    "GLIDEIN_CELERY_IDLE_TIMEOUT": layout.idle_timeout,
                },
                "limits": {
                    "max_idle_per_entry": 4,
                    "max_glideins_total": 12,
                    "max_new_idle_per_cycle": 4,
                },
                "remove_excess": {"mode": "IDLE", "after_cycles": 2},
            }
        },
    }


def write_yaml(path: Path, data: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    path.chmod(0o600)
