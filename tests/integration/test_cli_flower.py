"""`gwms flower` runs Flower on the factory's broker, where operators watch every task."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
import yaml

from gwms_tasks.embedded_redis import free_port
from tests.integration.celery_app_probe import start_process
from tests.integration.factory_harness import PYTHON, factory_config, wait_until

pytestmark = pytest.mark.redis


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status), response.read().decode()
    except OSError:
        return 0, ""


def test_gwms_flower_serves_the_factory_broker(tmp_path: Path, redis_url: str) -> None:
    entries = {"e1": {"auth_method": "scitoken", "backend": {"kind": "simulated"}}}
    config = tmp_path / "factory.yaml"
    config.write_text(
        yaml.safe_dump(factory_config(tmp_path, redis_url, {"fe": "nobody"}, entries))
    )
    port = free_port()
    argv = [PYTHON, "-m", "gwms_tasks.cli", "flower", "--config", str(config), "--port", str(port)]
    flower = start_process(argv, tmp_path / "flower.log", {})
    try:
        wait_until(
            lambda: _get(f"http://127.0.0.1:{port}/healthcheck")[0] == 200,
            60,
            f"Flower on port {port} ({flower.output()[-1500:]})",
        )
        status, page = _get(f"http://127.0.0.1:{port}/")
        assert status == 200 and "Flower" in page
    finally:
        flower.stop()
