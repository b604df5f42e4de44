"""The private redis-server of the tests and the demo: its own port, and its password if given."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

import gwms_tasks.demo.setup as demo_setup
from gwms_tasks import embedded_redis
from gwms_tasks.adapters.redis_admin import add_frontend_user
from gwms_tasks.demo.setup import DemoLayout, factory_config, make_layout
from gwms_tasks.embedded_redis import RedisServer, start_redis
from gwms_tasks.keys import Keys

pytestmark = pytest.mark.redis

PASSWORD = "s3cret/with:odd@chars"
FREE_PORT = embedded_redis.free_port
NO_RETRY = Retry(NoBackoff(), 0)  # redis-py retries a refused AUTH (a ConnectionError)


def _ports(*ports: int) -> Iterator[int]:
    """``free_port`` answering ``ports`` in turn, then real free ports."""
    yield from ports
    while True:
        yield FREE_PORT()


def _is_running_as_itself(server: RedisServer) -> bool:
    info = server.client().info("server")
    return server.process.poll() is None and int(info["process_id"]) == server.process.pid


def test_a_port_taken_by_another_redis_is_left_alone_and_another_port_used(
    redis_server: RedisServer, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis_client.set("someone-elses", "data")
    ports = _ports(redis_server.port)
    monkeypatch.setattr(embedded_redis, "free_port", lambda: next(ports))

    server = start_redis()
    try:
        assert server.port != redis_server.port
        assert _is_running_as_itself(server)
        server.client().flushall()  # what the tests' fixture does between tests
    finally:
        server.stop()
    assert redis_client.get("someone-elses") == b"data"


def test_a_port_that_stays_taken_is_a_clear_error_after_the_attempts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = int(listener.getsockname()[1])
        monkeypatch.setattr(embedded_redis, "free_port", lambda: taken)

        with pytest.raises(RuntimeError, match=f"exited 2 times.*port {taken}"):
            start_redis(directory=tmp_path / "redis", attempts=2)


@pytest.mark.parametrize("persist_acl", [False, True])
def test_with_a_password_only_clients_that_give_it_get_in(
    tmp_path: Path, persist_acl: bool
) -> None:
    server = start_redis(directory=tmp_path / "redis", persist_acl=persist_acl, password=PASSWORD)
    try:
        anonymous = redis.Redis(host="127.0.0.1", port=server.port, retry=NO_RETRY)
        with pytest.raises(redis.AuthenticationError):
            anonymous.set("gwms:dash:fe_a:forged", "1")
        wrong = redis.Redis(host="127.0.0.1", port=server.port, password="guess", retry=NO_RETRY)
        with pytest.raises(redis.AuthenticationError):
            wrong.ping()
        assert server.client().ping()
        assert redis.Redis.from_url(server.url).ping()
        cmdline = Path(f"/proc/{server.process.pid}/cmdline").read_bytes()
        assert PASSWORD.encode() not in cmdline, "every local user can read a command line"
    finally:
        server.stop()


def test_a_restarted_redis_with_an_acl_file_keeps_its_password_and_frontend_users(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "redis"
    server = start_redis(directory=directory, persist_acl=True, password=PASSWORD)
    try:
        url = add_frontend_user(server.client(), Keys(), "fe_kept")
    finally:
        server.process.terminate()
        server.process.wait(10)
    again = start_redis(directory=directory, persist_acl=True, password=PASSWORD)
    try:
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host="127.0.0.1", port=again.port, retry=NO_RETRY).ping()
        assert again.client().ping()
        port = url.rsplit(":", 1)[1].split("/")[0]
        assert redis.Redis.from_url(url.replace(port, str(again.port))).ping()
    finally:
        again.stop()


@pytest.mark.parametrize("password", ["", "two words"])
def test_an_unusable_password_is_refused_before_anything_starts(
    tmp_path: Path, password: str
) -> None:
    with pytest.raises(ValueError, match="non-empty and without whitespace"):
        start_redis(directory=tmp_path / "redis", password=password)
    assert not (tmp_path / "redis").exists()


def test_the_demo_reaches_its_redis_with_the_password_in_every_url(tmp_path: Path) -> None:
    server = start_redis(directory=tmp_path / "redis", password=PASSWORD)
    try:
        layout = DemoLayout(tmp_path, server.port, 1, 2, 3, "someone", 20, PASSWORD)
        urls = (layout.state_url, layout.broker_url, layout.dashboard_url,
                layout.frontend_broker_url, layout.vo_broker_url)  # fmt: skip
        for url in urls:
            assert redis.Redis.from_url(url).ping()
        config = factory_config(layout)
        assert redis.Redis.from_url(config["redis"]["state_url"]).ping()
        assert redis.Redis.from_url(config["dashboard"]["url"]).ping()
    finally:
        server.stop()


def test_each_demo_run_gets_its_own_redis_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo_setup, "demo_user", lambda: "someone")  # no useradd as root
    first = make_layout(tmp_path / "one", 20)
    second = make_layout(tmp_path / "two", 20)
    assert len(first.redis_password) >= 32
    assert first.redis_password != second.redis_password
