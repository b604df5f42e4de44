"""What the benchmark builds: its size, its names, and the factory config it generates."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

FACTORY = "bench_factory"
GLIDEIN = "gfactory_instance"
SECURITY_CLASS = "pilot"
LOOP_DELAY = 60
"""Simulated seconds between two cycles (the factory's ``loop_delay``)."""
KEY_PREFIX = "bench"
"""Redis key prefix of the bench, so that it never touches a factory's ``gwms:`` keys."""
DASHBOARD_DB = 2
"""The dashboard's database on the bench's Redis (examples/factory.yaml uses 2 as well)."""
UNUSED_REDIS_URL = "redis://127.0.0.1:1/0"
"""Config value for ``--memory`` runs: the config needs Redis URLs; nothing connects to it."""


@dataclass(frozen=True, slots=True)
class Shape:
    """How big the benchmark is.

    Attributes:
        entries: simulated entries of the factory.
        frontends: frontends, each requesting glideins at every entry.
        glideins: idle glideins each frontend requests at each entry.
        cycles: factory cycles run.
    """

    entries: int
    frontends: int
    glideins: int
    cycles: int

    @property
    def requests(self) -> int:
        return self.entries * self.frontends


def entry_names(shape: Shape) -> list[str]:
    width = max(4, len(str(shape.entries - 1)))
    return [f"sim_{i:0{width}d}" for i in range(shape.entries)]


@dataclass(frozen=True, slots=True)
class FrontendSpec:
    """One frontend: its SecurityName, its authenticated identity and its local user."""

    name: str
    identity: str
    username: str

    @property
    def client_name(self) -> str:
        return f"{self.name}.main"


def frontend_specs(shape: Shape) -> list[FrontendSpec]:
    return [
        FrontendSpec(f"fe{i:02d}", f"vofrontend_fe{i:02d}@bench.example.org", f"fe{i:02d}_pilot")
        for i in range(shape.frontends)
    ]


def config_text(shape: Shape, base: Path, state_url: str, dashboard_url: str) -> str:
    """The factory YAML: one simulated site per entry, limits above what the frontends ask.

    Each site runs as many glideins as all frontends request idle there, with a mean queue
    time of two cycles, so every cycle some glideins start and find-work has new work.
    """
    m, g = shape.frontends, shape.glideins
    entry = {
        "auth_method": "scitoken",
        "backend": {
            "kind": "simulated",
            "queue_time": 2 * LOOP_DELAY,
            "run_time": 3600,
            "hold_rate": 0.01,
            "capacity": m * g,
            "failure_rate": 0.02,
        },
        "attributes": {"GLIDEIN_CPUS": {"value": 4}},
        "submit": {"max_per_cycle": max(100, g)},
        "limits": {
            "per_entry": {"max_idle": 2 * m * g, "max_held": m * g, "max_glideins": 8 * m * g},
            "default_per_frontend": {"max_idle": 2 * g, "max_held": g, "max_glideins": 8 * g},
        },
    }
    document: dict[str, Any] = {
        "factory": {
            "name": FACTORY,
            "glidein_name": GLIDEIN,
            "web_url": "http://127.0.0.1:8080/factory/stage",
            "stage_dir": str(base / "stage"),
            "work_dir": str(base / "work"),
            "log_dir": str(base / "log"),
            "client_log_base_dir": str(base / "client_logs"),
            "client_proxies_base_dir": str(base / "client_proxies"),
            "loop_delay": LOOP_DELAY,
        },
        "redis": {"state_url": state_url, "broker_url": state_url},
        "dashboard": {"kind": "redis", "url": dashboard_url, "ad_lifetime": 900},
        "frontends": {
            spec.name: {
                "identity": spec.identity,
                "security_classes": {SECURITY_CLASS: spec.username},
            }
            for spec in frontend_specs(shape)
        },
        "entries": {name: entry for name in entry_names(shape)},
    }
    return yaml.safe_dump(document, sort_keys=False)
