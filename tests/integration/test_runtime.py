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
from gwms_tasks.adapters.user_keys import RedisUserKeys
from gwms_tasks.config_file import read_config
from gwms_tasks.core.envelope import UserKey
from gwms_tasks.errors import PermanentError, TransientError
from gwms_tasks.keys import Keys
from gwms_tasks.runtime import Runtime
from gwms_tasks.schedule import reload
from gwms_tasks.services.orders import order_lifetime
from gwms_tasks.services.staging_build import build_staging, staging_spec_from_config
from tests.integration.celery_app_probe import broker_db
from web.auth import token_matches

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


def test_a_reload_switches_config_the_token_still_works_and_backends_are_rebuilt(
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
    # The stored copy holds the token's digest: the token itself still authenticates.
    assert token_matches(config.web.operator_token.get_secret_value(), TOKEN)
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


def test_downtimes_are_parsed_again_only_when_they_changed(
    tmp_path: Path, redis_url: str, redis_client: redis.Redis
) -> None:
    path = _write(tmp_path / "f.yaml", _config(tmp_path, redis_url, {"e1": SIM, "e2": SIM}))
    runtime = Runtime(read_config(path))
    first = runtime.downtimes()
    assert runtime.downtimes() is first
    redis_client.set(Keys().downtimes(), "1970-01-01T00:00:00 None e1\n")
    from_redis = runtime.downtimes()
    assert from_redis is not first and from_redis.down_at(time.time(), "e1") is not None
    assert runtime.downtimes() is from_redis
    (tmp_path / "downtimes").write_text("1970-01-01T00:00:00 None e2\n")
    with_file = runtime.downtimes()
    assert with_file is not from_redis and with_file.down_at(time.time(), "e2") is not None
    assert runtime.downtimes() is with_file


def test_downtimes_of_an_unreachable_state_redis_are_a_transient_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "f.yaml", _config(tmp_path, "redis://127.0.0.1:1/0", {"e1": SIM}))
    with pytest.raises(TransientError, match="Redis unavailable while trying to read the down"):
        Runtime(read_config(path)).downtimes()


def _user_runtime(tmp_path: Path, redis_url: str) -> Runtime:
    data = _config(tmp_path, redis_url, {"e1": SIM})
    data["factory"]["loop_delay"] = 600
    data["factory"]["advertise_delay"] = 1
    return Runtime(read_config(_write(tmp_path / "f.yaml", data)))


def test_a_user_worker_publishes_its_key_and_reads_it_once(tmp_path: Path, redis_url: str) -> None:
    runtime = _user_runtime(tmp_path, redis_url)
    deps = runtime.user_deps("fe_user")
    assert deps.user_key is not None
    published = RedisUserKeys(runtime.state_client, runtime.keys).public_pem("fe_user")
    assert published == deps.user_key.public_pem
    assert deps.order_lifetime == order_lifetime(600) == 3000
    assert runtime.user_deps("fe_user").user_key is deps.user_key
    again = Runtime(runtime.config).user_deps("fe_user").user_key  # another process: its file
    assert again is not None and again.public_pem == published


def test_a_user_worker_refuses_to_start_when_another_key_is_published_for_its_user(
    tmp_path: Path, redis_url: str
) -> None:
    runtime = _user_runtime(tmp_path, redis_url)
    keys = RedisUserKeys(runtime.state_client, runtime.keys)
    intruder = UserKey.generate().public_pem  # e.g. published by another user's worker
    keys.publish("fe_user", intruder)
    with pytest.raises(PermanentError) as refused:
        runtime.user_deps("fe_user")
    assert str(refused.value) == (
        "another key is published for user fe_user; if this worker's key was regenerated "
        "on purpose run `gwms worker-key reset fe_user`"
    )
    assert keys.public_pem("fe_user") == intruder
    keys.remove("fe_user")  # what `gwms worker-key reset fe_user` does
    assert runtime.user_deps("fe_user").user_key is not None
    assert keys.public_pem("fe_user") != intruder


def test_a_reload_that_removes_the_token_disables_writes_at_once(
    tmp_path: Path, redis_url: str
) -> None:
    path = _write(tmp_path / "f.yaml", _config(tmp_path, redis_url, {"e1": SIM}))
    runtime = Runtime(read_config(path))
    assert runtime.config.web.operator_token is not None
    data = _config(tmp_path, redis_url, {"e1": SIM})
    del data["web"]["operator_token"]
    _write(path, data)
    reload(path)
    runtime._checked_at = float("-inf")
    assert runtime.refresh().web.operator_token is None
