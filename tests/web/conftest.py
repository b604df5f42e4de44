"""Fixtures of the web tests: keys, a factory world on memory or Redis state, a live server."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
import uvicorn
from fastapi import FastAPI

from gwms_tasks.adapters.memory_credentials import MemoryCredentialIndex
from gwms_tasks.adapters.memory_state import MemoryState
from gwms_tasks.adapters.redis_credentials import RedisCredentialIndex
from gwms_tasks.adapters.redis_state import RedisState
from gwms_tasks.adapters.simulated import SimulatedBackend
from gwms_tasks.core.crypto import FactoryKey
from gwms_tasks.core.envelope import UserKey
from gwms_tasks.keys import Keys
from tests.web.world import (
    ENTRY,
    FACTORY_WRITER,
    SITE,
    Clock,
    FactoryWorld,
    simulated_in_memory,
)


@pytest.fixture(scope="session")
def factory_key() -> FactoryKey:
    return FactoryKey.generate()


@pytest.fixture(scope="session")
def user_key() -> UserKey:
    return UserKey.generate()


@pytest.fixture
def memory_world(factory_key: FactoryKey, user_key: UserKey, tmp_path: Path) -> FactoryWorld:
    """A factory on the in-memory twins."""
    clock = Clock()
    return FactoryWorld(
        MemoryState(clock=clock),
        MemoryCredentialIndex(),
        simulated_in_memory(),
        factory_key,
        user_key,
        tmp_path,
        clock=clock,
    )


@pytest.fixture
def redis_world(
    redis_client: redis.Redis, factory_key: FactoryKey, user_key: UserKey, tmp_path: Path
) -> FactoryWorld:
    """A factory whose state (and simulated site) live in a private Redis."""
    keys = Keys()

    def site(clock: Callable[[], float]) -> SimulatedBackend:
        return SimulatedBackend.on_redis(
            redis_client, keys, SITE, FACTORY_WRITER, "gfactory_instance", ENTRY,
            random.Random(7), clock,
        )  # fmt: skip

    clock = Clock()
    return FactoryWorld(
        RedisState(redis_client, keys),
        RedisCredentialIndex(redis_client, keys),
        site,
        factory_key,
        user_key,
        tmp_path,
        clock=clock,
    )


@contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free 127.0.0.1 port; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
