"""Fixtures of the contract suites: each port built as the Redis adapter and as its memory twin.

The Redis variants use the private Redis of ``tests/conftest.py`` (skipped without
redis-server, failing under CI). Expiry is driven by Redis' own clock there, so ``advance``
sleeps; the memory variants get a manual clock that ``advance`` moves instantly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field

import pytest
import redis

from gwms_tasks.adapters.memory_dashboard import (
    DEFAULT_LIFETIME,
    REQUEST_AD_TYPES,
    MemoryChangeFeed,
    MemoryDashboard,
    MemoryDashboardHub,
)
from gwms_tasks.adapters.memory_state import DEFAULT_LEDGER_TTL, MemoryState
from gwms_tasks.adapters.redis_dashboard import RedisChangeFeed, RedisDashboard
from gwms_tasks.adapters.redis_state import RedisState
from gwms_tasks.keys import Keys

BACKENDS = ["redis", "memory"]


@dataclass
class ManualClock:
    """A clock that moves only when told to."""

    now: float = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Backend:
    """What a contract test needs to build adapters of one kind and move their clock."""

    kind: str
    keys: Keys
    clock: ManualClock
    client: redis.Redis | None = None
    url: str = ""
    clients: list[redis.Redis] = field(default_factory=list)

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass for expiry: sleep for Redis, move the manual clock otherwise."""
        if self.client is not None:
            time.sleep(seconds)
        self.clock.advance(seconds)

    def new_client(self) -> redis.Redis:
        """Another connection to the same Redis (threads and feeds want their own)."""
        assert self.url, "only the redis backend has connections"
        client = redis.Redis.from_url(self.url)
        self.clients.append(client)
        return client


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    kind = str(request.param)
    keys = Keys("gwmstest")
    if kind == "memory":
        yield Backend(kind, keys, ManualClock())
        return
    url = request.getfixturevalue("redis_url")
    chosen = Backend(kind, keys, ManualClock(), client=redis.Redis.from_url(url), url=url)
    yield chosen
    for client in [*chosen.clients, chosen.client]:
        if client is not None:
            client.close()


StateFactory = Callable[..., RedisState | MemoryState]


@pytest.fixture
def make_state(backend: Backend) -> StateFactory:
    """Build the state store under test (optionally with a short ledger ttl)."""

    def build(ledger_ttl: float = DEFAULT_LEDGER_TTL) -> RedisState | MemoryState:
        if backend.client is None:
            return MemoryState(clock=backend.clock, ledger_ttl=ledger_ttl)
        return RedisState(backend.client, backend.keys, ledger_ttl=ledger_ttl)

    return build


@pytest.fixture
def state(make_state: StateFactory) -> RedisState | MemoryState:
    return make_state()


@dataclass
class DashboardWorld:
    """Dashboards of several writers on one shared store, and change feeds on it."""

    backend: Backend
    hub: MemoryDashboardHub | None
    closers: list[Callable[[], None]] = field(default_factory=list)

    def handle(
        self, writer: str, lifetime: float = DEFAULT_LIFETIME
    ) -> MemoryDashboard | RedisDashboard:
        """The dashboard as ``writer`` sees it (the Redis one connects as the admin user)."""
        if self.hub is not None:
            return self.hub.handle(writer, lifetime)
        assert self.backend.client is not None
        return RedisDashboard(
            self.backend.client, self.backend.keys, writer, lifetime, clock=self.backend.clock
        )

    def feed(
        self, ad_types: Collection[str] | None = REQUEST_AD_TYPES
    ) -> MemoryChangeFeed | RedisChangeFeed:
        feed: MemoryChangeFeed | RedisChangeFeed
        if self.hub is not None:
            feed = self.hub.change_feed(ad_types)
        else:
            feed = RedisChangeFeed(self.backend.new_client(), self.backend.keys, ad_types)
        self.closers.append(feed.close)
        return feed


@pytest.fixture
def world(backend: Backend) -> Iterator[DashboardWorld]:
    hub = MemoryDashboardHub(clock=backend.clock) if backend.kind == "memory" else None
    chosen = DashboardWorld(backend, hub)
    yield chosen
    for close in chosen.closers:
        close()
