"""Find-work unwraps a frontend's request key once for all the entries it asks for."""

from __future__ import annotations

from pathlib import Path

import yaml

from gwms_tasks.adapters.memory_backend import MemoryGridBackend
from gwms_tasks.adapters.memory_dashboard import MemoryDashboardHub
from gwms_tasks.adapters.memory_dispatcher import MemoryDispatcher
from gwms_tasks.adapters.memory_state import MemoryState
from gwms_tasks.adapters.user_keys import MemoryUserKeys
from gwms_tasks.config_file import read_config
from gwms_tasks.core.ads import AdType
from gwms_tasks.core.crypto import FactoryKey
from gwms_tasks.core.downtimes import Downtimes
from gwms_tasks.core.envelope import UserKey
from gwms_tasks.core.keyring import Keyring
from gwms_tasks.core.staging import SignedDescription, SignType, StagingIndex
from gwms_tasks.ports import Dashboard
from gwms_tasks.runtime import Runtime
from gwms_tasks.services.deps import FactoryDeps
from gwms_tasks.services.find_work import find_work
from gwms_tasks.services.key_cache import KeyCodeCache
from tests.builders import FrontendSide, example_config
from tests.integration.celery_app_probe import broker_db

ENTRIES = ("simulated_site", "ce_osg_htcondor")  # the scitoken entries of the example
CMS = "vofrontend_cms@frontend.cms.example.org"
NOW = 1_000_000.0


def factory_deps(factory_key: FactoryKey, dashboard: Dashboard, cache: KeyCodeCache) -> FactoryDeps:
    """The example factory on memory twins, serving ENTRIES, reading requests from ``dashboard``."""
    backends = {
        e: MemoryGridBackend("demo_factory", "gfactory_instance", e, lambda: NOW) for e in ENTRIES
    }
    user_keys = MemoryUserKeys()
    user_keys.publish("fe_cms_pilot", UserKey.generate().public_pem)
    index = StagingIndex(
        SignType.SHA1,
        SignedDescription("description.aaaa.cfg", "a" * 40),
        {e: SignedDescription("description.bbbb.cfg", "b" * 40) for e in ENTRIES},
    )
    return FactoryDeps(
        config=example_config(),
        state=MemoryState(clock=lambda: NOW),
        dashboard=dashboard,
        backend_for=backends.__getitem__,
        dispatcher=MemoryDispatcher(),
        user_keys=user_keys,
        keyring=lambda: Keyring(factory_key),
        downtimes=Downtimes,
        staging=lambda: index,
        clock=lambda: NOW,
        key_codes=cache,
    )


def test_one_wrapped_key_serves_every_entry_of_a_frontend_cycle() -> None:
    factory_key = FactoryKey.generate()
    hub = MemoryDashboardHub(clock=lambda: NOW)
    frontend = FrontendSide(factory_key)
    wrapped = frontend.key().to_attrs()  # one wrap per cycle, as the VO frontend sends it
    ads = [{**frontend.request(entry, idle=2), **wrapped} for entry in ENTRIES]
    hub.handle(CMS).advertise(AdType.GLIDECLIENT, ads)
    cache = KeyCodeCache()
    deps = factory_deps(factory_key, hub.handle("factory"), cache)
    results = [find_work(deps, entry, f"run-{entry}") for entry in ENTRIES]
    assert [(r.requests, r.rejected, r.submitted) for r in results] == [(1, 0, 2), (1, 0, 2)]
    assert list(cache) == [(factory_key.pub_key_id, wrapped["ReqEncKeyCode"])]


def test_every_factory_deps_of_a_runtime_shares_the_process_cache(
    tmp_path: Path, redis_url: str
) -> None:
    config = {
        "factory": {
            "name": "rt",
            "web_url": "http://127.0.0.1:9/stage",
            **{d: str(tmp_path / d) for d in ("stage_dir", "work_dir", "log_dir")},
            "client_log_base_dir": str(tmp_path / "client_log"),
            "client_proxies_base_dir": str(tmp_path / "proxies"),
        },
        "redis": {"state_url": redis_url, "broker_url": broker_db(redis_url)},
        "dashboard": {"kind": "redis", "url": broker_db(redis_url, 2)},
        "frontends": {"fe": {"identity": "fe_id", "security_classes": {"main": "fe_user"}}},
        "entries": {"e1": {"auth_method": "scitoken", "backend": {"kind": "simulated"}}},
    }
    path = tmp_path / "factory.yaml"
    path.write_text(yaml.safe_dump(config))
    runtime = Runtime(read_config(path))
    first, second = (runtime.factory_deps(MemoryDispatcher()) for _ in range(2))
    assert first is not second
    assert first.key_codes is second.key_codes
    assert Runtime(read_config(path)).factory_deps(MemoryDispatcher()).key_codes is not (
        first.key_codes
    )
