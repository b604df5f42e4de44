"""The composition root on real Redis: reloads, downtimes from two places, the staging index."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from gwms_tasks.adapters.local_site import LocalSiteBackend
from gwms_tasks.adapters.simulated import SimulatedBackend
from gwms_tasks.config_file import read_config
from gwms_tasks.errors import PermanentError
from gwms_tasks.keys import Keys
from gwms_tasks.runtime import Runtime
from gwms_tasks.schedule import reload
from gwms_tasks.services.staging_build import build_staging, staging_spec_from_config
from tests.integration.celery_app_probe import broker_db

pytestmark = pytest.mark.redis
TOKEN = "operator-token-0123456789"


def _config(tmp: Path, redis_url: str, entries: dict[str, Any]) -> dict[str, Any]:
    return {
        "factory": {
            "name": "rt",
            "web_url": "http://127.0.0.1:9/stage",
            "stage_dir": str(tmp / "stage"),
            "work_dir": str(tmp / "work"),
            "log_dir": str(tmp / "log"),
            "client_log_base_dir": str(tmp / "client_log"),
            "client_proxies_base_dir": str(tmp / "proxies"),
            "downtimes_file": str(tmp / "downtimes"),
        },
        "redis": {"state_url": redis_url, "broker_url": broker_db(redis_url)},
        "dashboard": {"kind": "redis", "url": broker_db(redis_url, 2)},
        "web": {"operator_token": TOKEN},
        "frontends": {"fe": {"identity": "fe_id", "security_classes": {"main": "fe_user"}}},
        "entries": entries,
    }


SIM = {"auth_method": "scitoken", "backend": {"kind": "simulated"}}
SITE = {"auth_method": "scitoken", "backend": {"kind": "local_site", "site": "S1"}}


def _write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_reload_switches_config_keeps_the_token_and_rebuilds_backends(
    tmp_path: Path, redis_url: str
) -> None:
    path = _write(tmp_path / "f.yaml", _config(tmp_path, redis_url, {"e1": SIM}))
    runtime = Runtime(read_config(path))
    assert isinstance(runtime.backend_for("e1"), SimulatedBackend)
    with pytest.raises(PermanentError, match="not in the factory config"):
        runtime.backend_for("e2")
    _write(path, _config(tmp_path, redis_url, {"e1": SITE, "e2": SIM}))
    reload(path)
    runtime._checked_at = float("-inf")  # do not wait for the next poll
    config = runtime.refresh()
    assert set(config.entries) == {"e1", "e2"}
    assert config.web.operator_token is not None
    assert config.web.operator_token.get_secret_value() == TOKEN
    assert isinstance(runtime.backend_for("e1"), LocalSiteBackend)


def test_a_stored_config_that_no_longer_validates_is_ignored(
    tmp_path: Path, redis_url: str, redis_client: redis.Redis
) -> None:
    path = _write(tmp_path / "f.yaml", _config(tmp_path, redis_url, {"e1": SIM}))
    runtime = Runtime(read_config(path))
    reload(path)
    redis_client.hset(Keys().accepted_config(), "text", "factory: [broken")
    runtime._checked_at = float("-inf")
    assert set(runtime.refresh().entries) == {"e1"}


def test_downtimes_merge_redis_and_file_and_survive_a_bad_one(
    tmp_path: Path, redis_url: str, redis_client: redis.Redis
) -> None:
    path = _write(tmp_path / "f.yaml", _config(tmp_path, redis_url, {"e1": SIM, "e2": SIM}))
    runtime = Runtime(read_config(path))
    now = time.time()
    assert runtime.downtimes().down_at(now, "e1") is None
    redis_client.set(Keys().downtimes(), "1970-01-01T00:00:00 None e1 # from redis\n")
    (tmp_path / "downtimes").write_text("1970-01-01T00:00:00 None e2 # from the file\n")
    downtimes = runtime.downtimes()
    assert downtimes.down_at(now, "e1") is not None
    assert downtimes.down_at(now, "e2") is not None
    (tmp_path / "downtimes").write_text("this is not a downtime\n")
    downtimes = runtime.downtimes()
    assert downtimes.down_at(now, "e1") is not None  # the Redis ones still apply
    assert downtimes.down_at(now, "e2") is None


def test_the_staging_index_is_read_and_reread_after_a_rebuild(
    tmp_path: Path, redis_url: str
) -> None:
    path = _write(tmp_path / "f.yaml", _config(tmp_path, redis_url, {"e1": SIM}))
    config = read_config(path)
    runtime = Runtime(config)
    assert runtime.staging() is None
    built = build_staging(staging_spec_from_config(config), Path(config.factory.stage_dir))
    assert runtime.staging() == built
    _write(path, _config(tmp_path, redis_url, {"e1": SIM, "e2": SIM}))
    time.sleep(0.01)  # a distinct mtime
    rebuilt = build_staging(staging_spec_from_config(read_config(path)), tmp_path / "stage")
    assert set(rebuilt.entries) == {"e1", "e2"}
    assert runtime.staging() == rebuilt


def test_the_factory_key_is_created_once_then_only_read(tmp_path: Path, redis_url: str) -> None:
    path = _write(tmp_path / "f.yaml", _config(tmp_path, redis_url, {"e1": SIM}))
    config = read_config(path)
    with pytest.raises(PermanentError, match="gwms worker factory"):
        Runtime(config).keyring()
    created = Runtime(config).create_factory_key()
    assert Runtime(config).keyring().current.pub_key_id == created.current.pub_key_id
    assert (tmp_path / "work" / "rsa.key").stat().st_mode & 0o777 == 0o600
