"""`gwms worker-key reset` against real Redis: the operator lets a regenerated key be published."""

from __future__ import annotations

from pathlib import Path

import pytest

from gwms_tasks.adapters.user_keys import RedisUserKeys
from gwms_tasks.config_file import read_config
from gwms_tasks.core.envelope import UserKey
from gwms_tasks.runtime import Runtime
from tests.integration.cli_helpers import USER, run, write_config

pytestmark = pytest.mark.redis


def test_reset_forgets_the_published_key_so_the_worker_can_publish_its_own(
    tmp_path: Path, redis_url: str
) -> None:
    config = write_config(tmp_path, redis_url)
    runtime = Runtime(read_config(config))
    keys = RedisUserKeys(runtime.state_client, runtime.keys)
    keys.publish(USER, UserKey.generate().public_pem)  # the key before it was regenerated

    result = run("worker-key", "reset", USER, config=config)

    assert result.exit_code == 0, result.output
    assert result.output == f"the key published for user {USER} is forgotten: restart its worker\n"
    assert keys.public_pem(USER) is None
    worker_key = runtime.user_deps(USER).user_key
    assert worker_key is not None and keys.public_pem(USER) == worker_key.public_pem


def test_reset_of_a_user_without_a_published_key_says_so(tmp_path: Path, redis_url: str) -> None:
    config = write_config(tmp_path, redis_url)
    result = run("worker-key", "reset", USER, config=config)
    assert result.exit_code == 1
    assert result.stderr == f"gwms: no key is published for user {USER} (nothing removed)\n"
