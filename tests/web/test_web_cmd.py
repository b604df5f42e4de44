"""``gwms web``: the real command serving a factory's state from Redis."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.builders import EXAMPLE_CONFIG

GWMS = [sys.executable, "-m", "gwms_tasks.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_web(config: Path) -> subprocess.CompletedProcess[str]:
    """``gwms web`` expected to stop at once (a bad config)."""
    return subprocess.run(
        [*GWMS, "web", "--config", str(config)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def write_config(tmp_path: Path, redis_url: str, port: int, **factory: Any) -> Path:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["redis"] = {"state_url": redis_url, "broker_url": redis_url}
    data["dashboard"]["url"] = redis_url
    data["web"] = {"listen_host": "127.0.0.1", "listen_port": port}
    data["factory"].update(stage_dir=str(tmp_path / "stage"), downtimes_file=None, **factory)
    path = tmp_path / "factory.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_gwms_web_serves_the_pages_api_and_metrics(redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, redis_url, port)
    (tmp_path / "stage").mkdir()
    (tmp_path / "stage" / "signatures.sha1").write_text("index\n")
    server = subprocess.Popen(
        [*GWMS, "web", "--config", str(config), "--loglevel", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                overview = httpx.get(f"{base}/api/overview", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.communicate()[0].decode()
                assert time.monotonic() < deadline, "gwms web did not start listening"
                time.sleep(0.1)
        assert overview.status_code == 200
        assert [e["name"] for e in overview.json()["entries"]] == [
            "ce_osg_htcondor",
            "local_cluster",
            "simulated_site",
        ]
        assert httpx.get(f"{base}/metrics").text.startswith("# HELP")
        assert httpx.get(f"{base}/factory/stage/signatures.sha1").text == "index\n"
        assert httpx.get(f"{base}/entries/simulated_site").status_code == 200
        retry = httpx.post(f"{base}/api/failed-submits/x/retry")
        assert retry.status_code == 403  # no operator token in this config
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_a_bad_config_is_reported_without_a_traceback(tmp_path: Path) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text("factory: {name: 'bad name'}\n")
    done = run_web(config)
    assert done.returncode == 1
    assert str(config) in done.stderr
    assert "Traceback" not in done.stderr


def test_a_web_url_hiding_the_pages_is_reported(redis_url: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, redis_url, free_port(), web_url="http://127.0.0.1:8080/")
    done = run_web(config)
    assert done.returncode == 1
    assert "factory.web_url: the staging area needs a path of its own" in done.stderr
    assert "Traceback" not in done.stderr
