"""Builders of the frontend tests: a frontend config, factory ads, memory ports, factory checks.

The factory side is the example factory config (``examples/factory.yaml``, via
``tests/builders.example_config``): factory ``demo_factory``, instance ``gfactory_instance``,
frontend ``cms_frontend`` authenticated as ``vofrontend_cms@frontend.cms.example.org``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from gwms_tasks.adapters.memory_dashboard import MemoryDashboardHub
from gwms_tasks.core.ads import (
    AdType,
    AdvertisedLimits,
    FactoryClientAd,
    FactoryEntryAd,
    FactoryGlobalAd,
    FactoryPublicKey,
    FactoryWeb,
)
from gwms_tasks.core.classad_text import AdValue
from gwms_tasks.core.crypto import FactoryKey, SymKey
from gwms_tasks.core.keyring import Keyring
from gwms_tasks.core.limits import GlideinLimits
from gwms_tasks.core.requests import Rejection, Request, ValidationContext, validate_request
from gwms_tasks.frontend.core_config import FrontendConfig, load_frontend_config
from gwms_tasks.frontend.deps import FrontendDeps
from gwms_tasks.frontend.source_memory import MemoryJobSource
from gwms_tasks.frontend.state import MemoryExplanationStore
from gwms_tasks.ports import AuthenticatedAd
from tests.builders import example_config

FACTORY = "demo_factory"
GLIDEIN = "gfactory_instance"
FACTORY_WRITER = "factory"
FRONTEND = "cms_frontend"
IDENTITY = "vofrontend_cms@frontend.cms.example.org"
CLIENT = f"{FRONTEND}.main"
NOW = 1_795_000_000.0
SCITOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJjbXMifQ.c2lnbmF0dXJl"
IDTOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwb29sIn0.aWR0b2tlbg"
PROXY = "-----BEGIN CERTIFICATE-----\nMIIproxy\n-----END CERTIFICATE-----\n"
SITES = {"ce_osg_htcondor": "OSG_EXAMPLE", "local_cluster": "LOCAL_DEMO", "simulated_site": "SIM"}
AUTH = {"ce_osg_htcondor": "scitoken", "local_cluster": "grid_proxy", "simulated_site": "scitoken"}


def req_name(entry: str, factory: str = FACTORY) -> str:
    return f"{entry}@{GLIDEIN}@{factory}"


def frontend_data(tmp_path: Path, redis_url: str = "redis://127.0.0.1:1/0") -> dict[str, Any]:
    """The data of a valid frontend config; credential files written under ``tmp_path``."""
    (tmp_path / "cms.scitoken").write_text(SCITOKEN + "\n")
    (tmp_path / "pool.idtoken").write_text(IDTOKEN + "\n")
    (tmp_path / "cms.proxy").write_text(PROXY)
    scheme, _, rest = redis_url.partition("://")
    host = rest.rpartition("@")[2]
    return {
        "frontend": {"name": FRONTEND, "identity": IDENTITY, "loop_delay": 30},
        "dashboard": {"url": f"{scheme}://{quote(IDENTITY, safe='')}:secret@{host}"},
        "factories": [{"name": FACTORY, "glidein_name": GLIDEIN, "identity": FACTORY_WRITER}],
        "celery": {"broker_url": "redis://127.0.0.1:1/4"},
        "web": {"url": "http://fe.example.org/stage", "stage_dir": "stage"},
        "groups": {
            "main": {
                "job_source": {"kind": "celery", "broker_url": "redis://127.0.0.1:1/5",
                               "queue": "vo_jobs"},
                "entry_constraint": "GLIDEIN_Site =!= undefined",
                "match": "job.RequestCpus =?= undefined || job.RequestCpus <= entry.GLIDEIN_CPUS",
                "credentials": [
                    {"id": "cms_token", "path": "cms.scitoken", "type": "scitoken",
                     "security_class": "production"},
                    {"id": "cms_proxy", "path": "cms.proxy", "type": "grid_proxy",
                     "security_class": "analysis"},
                    {"id": "cms_pool", "path": "pool.idtoken", "type": "idtoken",
                     "security_class": "production"},
                ],
                "params": {"GLIDEIN_CELERY_QUEUE": "vo_jobs", "GLIDEIN_CELERY_IDLE_TIMEOUT": 60},
                "limits": {"max_idle_per_entry": 50, "max_glideins_total": 100,
                           "max_new_idle_per_cycle": 10},
                "remove_excess": {"mode": "IDLE", "after_cycles": 2},
            }
        },
    }  # fmt: skip


def config_of(data: Mapping[str, Any]) -> FrontendConfig:
    return load_frontend_config(yaml.safe_dump(dict(data)), "frontend.yaml")


def with_changes(data: Mapping[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``data`` with the value at a dotted path (``groups.main.limits``) set."""
    changed = copy.deepcopy(dict(data))
    *parents, last = path.split(".")
    node = changed
    for part in parents:
        node = node[part]
    node[last] = value
    return changed


@dataclass
class FactorySite:
    """A factory as the frontend sees it: its key and the ads it writes on a memory hub."""

    key: FactoryKey
    hub: MemoryDashboardHub = field(default_factory=lambda: MemoryDashboardHub(clock=lambda: NOW))
    writer: str = FACTORY_WRITER

    @property
    def public(self) -> FactoryPublicKey:
        return FactoryPublicKey(self.key.pub_key_id, self.key.public_pem.decode(), "RSA")

    def global_ad(self, factory: str = FACTORY) -> dict[str, AdValue]:
        ad = FactoryGlobalAd(factory, GLIDEIN, 1_700_000_000, self.public)
        return ad.to_attrs(sequence=1)

    def entry(self, entry: str, *, factory: str = FACTORY, **changes: Any) -> FactoryEntryAd:
        values: dict[str, Any] = {
            "entry_name": entry,
            "glidein_name": GLIDEIN,
            "factory_name": factory,
            "daemon_start_time": 1_700_000_000,
            "public_key": self.public,
            "auth_method": AUTH.get(entry, "scitoken"),
            "web": FactoryWeb("http://f/stage", "descript.a.cfg", "ab", "descript.b.cfg", "cd"),
            "limits": AdvertisedLimits(GlideinLimits(400, 100, 2000), GlideinLimits(100, 20, 1000)),
            "attributes": {"GLIDEIN_Site": SITES.get(entry, entry), "GLIDEIN_CPUS": 4,
                           "GLIDEIN_Gatekeeper": f"{entry}.example.org"},
            "params": {"GLIDEIN_Collector": "Fake"},
        }  # fmt: skip
        values.update(changes)
        return FactoryEntryAd(**values)

    def client(
        self, entry: FactoryEntryAd, idle: int = 0, running: int = 0, held: int = 0
    ) -> dict[str, AdValue]:
        monitor = {"StatusIdle": idle, "StatusRunning": running, "StatusHeld": held}
        return FactoryClientAd.for_entry(entry, CLIENT, monitor).to_attrs(sequence=1)

    def publish(
        self, ad_type: AdType, *ads: Mapping[str, AdValue], writer: str | None = None
    ) -> None:
        self.hub.handle(writer or self.writer).advertise(ad_type, list(ads))

    def offer(self, *entries: str, glideins: Mapping[str, tuple[int, int]] | None = None) -> None:
        """Publish the global ad, these entries, and client ads with (idle, running) glideins."""
        self.publish(AdType.GLIDEFACTORY_GLOBAL, self.global_ad())
        built = [self.entry(name) for name in entries]
        self.publish(AdType.GLIDEFACTORY, *(e.to_attrs(sequence=1) for e in built))
        for entry in built:
            idle, running = (glideins or {}).get(entry.entry_name, (0, 0))
            self.publish(AdType.GLIDEFACTORY_CLIENT, self.client(entry, idle, running))

    def requests(self) -> list[AuthenticatedAd]:
        return self.hub.handle(self.writer).query(AdType.GLIDECLIENT)

    def validate(self, ad: AuthenticatedAd) -> Request | Rejection:
        """The factory's own validation of one request ad (reference §2.3, §2.4)."""
        entry = str(ad.attrs["ReqName"]).split("@")[0]
        ctx = ValidationContext(
            config=example_config(),
            entry=entry,
            keyring=Keyring(self.key),
            now=NOW,
            down_for=lambda frontend, security_class: None,
        )
        return validate_request(ad.attrs, ad.identity, ctx)

    def decrypt(self, attrs: Mapping[str, AdValue]) -> dict[str, str]:
        """Every ``GlideinEncParam*`` value of a frontend ad, decrypted with the factory key."""
        sym = self.key.decrypt_key_code(str(attrs["ReqEncKeyCode"]))
        prefix = "GlideinEncParam"
        return {
            name.removeprefix(prefix): sym.decrypt_hex(str(value))
            for name, value in attrs.items()
            if name.startswith(prefix)
        }


def fixed_keys() -> Any:
    """A ``new_sym`` that makes a different, reproducible key on every call."""
    counter = iter(range(1, 1000))

    def new_sym() -> SymKey:
        seed = next(counter)
        return SymKey.generate(random_bytes=lambda n: bytes((seed + i) % 256 for i in range(n)))

    return new_sym


def memory_deps(
    config: FrontendConfig, base_dir: Path, hub: MemoryDashboardHub, source: MemoryJobSource
) -> FrontendDeps:
    """A frontend on the memory twins, writing to ``hub`` as its identity."""
    return FrontendDeps(
        config=config,
        base_dir=base_dir,
        dashboard=hub.handle(config.frontend.identity),
        explanations=MemoryExplanationStore(),
        job_source=lambda group: source,
        clock=lambda: NOW,
        new_sym=fixed_keys(),
    )
