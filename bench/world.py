"""The benchmark's factory: a generated config, keys, and the real services' ports.

Everything the production code runs through is real: the config goes through ``load_config``,
requests are encrypted for the factory key as the VO frontend does it (one symmetric key per
frontend and cycle, wrapped once with RSA-OAEP), the Redis dashboard identifies each frontend by
its own ACL user, and the simulated sites live in Redis hashes. Only the scheduling is the
bench's: it calls the services in sequence instead of Celery running them as tasks, and the
submit orders go to an in-memory dispatcher that the bench then executes as the user workers
would.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis

from bench.shape import (
    DASHBOARD_DB,
    FACTORY,
    GLIDEIN,
    KEY_PREFIX,
    SECURITY_CLASS,
    UNUSED_REDIS_URL,
    FrontendSpec,
    Shape,
    config_text,
    entry_names,
    frontend_specs,
)
from gwms_tasks.adapters.memory_dashboard import MemoryDashboardHub
from gwms_tasks.adapters.memory_dispatcher import MemoryDispatcher
from gwms_tasks.adapters.memory_state import MemoryState
from gwms_tasks.adapters.redis_admin import add_frontend_user
from gwms_tasks.adapters.redis_dashboard import RedisDashboard
from gwms_tasks.adapters.redis_state import RedisState
from gwms_tasks.adapters.simulated import SimulatedBackend
from gwms_tasks.adapters.user_keys import MemoryUserKeys, RedisUserKeys
from gwms_tasks.core.ads import AdType, FrontendWeb, GlideClientAd
from gwms_tasks.core.backend_settings import site_parameters
from gwms_tasks.core.config import FactoryConfig, load_config
from gwms_tasks.core.config_parts import BackendKind
from gwms_tasks.core.credentials import SCITOKEN_PARAM
from gwms_tasks.core.crypto import FactoryKey, FactoryPublicKey, SymKey
from gwms_tasks.core.downtimes import Downtimes
from gwms_tasks.core.envelope import UserKey
from gwms_tasks.core.keyring import Keyring
from gwms_tasks.core.simulation import SiteParameters
from gwms_tasks.core.staging import SignedDescription, SignType, StagingIndex
from gwms_tasks.frontend.core_ads import wrap_key
from gwms_tasks.keys import Keys
from gwms_tasks.ports import Dashboard, GridBackend, StateStore, UserKeys
from gwms_tasks.services.deps import FactoryDeps
from gwms_tasks.services.submit import UserDeps

_WEB = FrontendWeb(
    url="http://fe.bench.example.org/vofrontend/stage",
    sign_type="sha1",
    descript_file="description.abc.cfg",
    descript_sign="0123456789abcdef0123456789abcdef01234567",
    group_url="http://fe.bench.example.org/vofrontend/stage/group_main",
    group_descript_file="description.def.cfg",
    group_descript_sign="89abcdef0123456789abcdef0123456789abcdef",
    monitoring_url="http://fe.bench.example.org/vofrontend/monitor",
)


class Clock:
    """The simulated time of the bench (epoch seconds), moved one loop per cycle."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class BenchFrontend:
    """A frontend writing its requests as the VO frontend does.

    Each publish makes a new symmetric key, wraps it once for the factory key, and sends all
    the frontend's requests in one advertise call (one ReqEncKeyCode for all of them).
    """

    spec: FrontendSpec
    dashboard: Dashboard
    factory_public: FactoryPublicKey
    sequence: int = 0

    def publish(self, entries: list[str], idle: int, max_glideins: int) -> None:
        self.sequence += 1
        sym = SymKey.generate()
        key = wrap_key(self.factory_public, sym, self.spec.identity)
        secret = {
            "SecurityName": self.spec.name,
            "SecurityClass": SECURITY_CLASS,
            SCITOKEN_PARAM: f"eyJ.bench-token-of-{self.spec.name}.sig",
        }
        enc_params = {name: sym.encrypt_hex(value) for name, value in secret.items()}
        ads = [
            GlideClientAd(
                cred_id="scitoken",
                req_name=f"{entry}@{GLIDEIN}@{FACTORY}",
                client_name=self.spec.client_name,
                frontend_name=self.spec.name,
                group_name="main",
                web=_WEB,
                idle_glideins=idle,
                max_glideins=max_glideins,
                key=key,
                enc_params=enc_params,
            ).to_attrs(sequence=self.sequence)
            for entry in entries
        ]
        self.dashboard.advertise(AdType.GLIDECLIENT, ads)


@dataclass
class BenchWorld:
    """The factory side, the user workers and the frontends of one benchmark run."""

    shape: Shape
    config: FactoryConfig
    entries: list[str]
    clock: Clock
    deps: FactoryDeps
    dispatcher: MemoryDispatcher
    users: dict[str, UserDeps]
    frontends: list[BenchFrontend]
    backend_label: str
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in reversed(self.closers):
            close()


@dataclass(frozen=True)
class _Common:
    """What both backends of the bench share: config, keys, staging, users."""

    shape: Shape
    config: FactoryConfig
    entries: list[str]
    clock: Clock
    factory_key: FactoryKey
    user_keys: dict[str, UserKey]
    seed: int

    def site(self, entry: str, side: str) -> tuple[random.Random, SiteParameters]:
        """The entry's site model parameters, and a random source seeded for ``side``."""
        spec = self.config.entries[entry].backend
        assert spec.kind is BackendKind.SIMULATED
        return random.Random(f"{self.seed}:{entry}:{side}"), site_parameters(spec)

    def staging(self) -> StagingIndex:
        return StagingIndex(
            SignType.SHA1,
            SignedDescription("description.main.cfg", "a" * 40),
            {e: SignedDescription(f"description.{e}.cfg", "b" * 40) for e in self.entries},
        )

    def factory_deps(
        self,
        state: StateStore,
        dashboard: Dashboard,
        backends: dict[str, GridBackend],
        dispatcher: MemoryDispatcher,
        user_keys: UserKeys,
    ) -> FactoryDeps:
        keyring, index, downtimes = Keyring(self.factory_key), self.staging(), Downtimes()
        for username, key in self.user_keys.items():
            user_keys.publish(username, key.public_pem)
        return FactoryDeps(
            config=self.config,
            state=state,
            dashboard=dashboard,
            backend_for=backends.__getitem__,
            dispatcher=dispatcher,
            user_keys=user_keys,
            keyring=lambda: keyring,
            downtimes=lambda: downtimes,
            staging=lambda: index,
            clock=self.clock,
        )

    def user_deps(self, state: StateStore, backends: dict[str, GridBackend]) -> dict[str, UserDeps]:
        proxies = Path(self.config.factory.client_proxies_base_dir)
        return {
            username: UserDeps(
                username=username,
                state=state,
                backend_for=backends.__getitem__,
                user_key=key,
                credential_dir=proxies / f"user_{username}" / f"glidein_{GLIDEIN}",
                clock=self.clock,
            )
            for username, key in self.user_keys.items()
        }


def _common(shape: Shape, base: Path, state_url: str, dashboard_url: str, seed: int) -> _Common:
    text = config_text(shape, base, state_url, dashboard_url)
    config = load_config(text, "<bench config>")
    specs = frontend_specs(shape)
    return _Common(
        shape=shape,
        config=config,
        entries=entry_names(shape),
        clock=Clock(float(1_700_000_000)),
        factory_key=FactoryKey.generate(),
        user_keys={spec.username: UserKey.generate() for spec in specs},
        seed=seed,
    )


def memory_world(shape: Shape, base: Path, seed: int = 1) -> BenchWorld:
    """The bench on the in-memory twins: one process's memory plays Redis."""
    common = _common(shape, base, UNUSED_REDIS_URL, UNUSED_REDIS_URL, seed)
    clock = common.clock
    hub = MemoryDashboardHub(clock=clock, lifetime=900)
    state = MemoryState(clock=clock)
    backends: dict[str, GridBackend] = {}
    for entry in common.entries:
        rng, params = common.site(entry, "shared")
        backends[entry] = SimulatedBackend.in_memory(params, FACTORY, GLIDEIN, entry, rng, clock)
    dispatcher = MemoryDispatcher()
    deps = common.factory_deps(state, hub.handle(FACTORY), backends, dispatcher, MemoryUserKeys())
    public = FactoryPublicKey.from_pem(common.factory_key.public_pem)
    frontends = [
        BenchFrontend(spec, hub.handle(spec.identity), public) for spec in frontend_specs(shape)
    ]
    return BenchWorld(
        shape, common.config, common.entries, clock, deps, dispatcher,
        common.user_deps(state, backends), frontends, "in-memory twins",
    )  # fmt: skip


def dashboard_url_of(state_url: str) -> str:
    """The dashboard's database: database 2 of the state Redis (as examples/factory.yaml has it),
    so that its key scans do not walk the state keys (ledger records, sites)."""
    parts = urlsplit(state_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{DASHBOARD_DB}", parts.query, ""))


def redis_world(shape: Shape, base: Path, url: str, seed: int = 1) -> BenchWorld:
    """The bench on Redis at ``url`` (needs ACL admin rights: it creates the frontend users).

    The state is in the database of ``url``, the dashboard in database 2 of the same server.
    The factory and the user workers each get their own connection and their own copy of
    every simulated site, as separate processes would: a submit by a user worker makes the
    factory's monitor reload that site from Redis, as in production.
    """
    dashboard_url = dashboard_url_of(url)
    common = _common(shape, base, url, dashboard_url, seed)
    clock, keys = common.clock, Keys(KEY_PREFIX)
    factory_client = redis.Redis.from_url(url)
    user_client = redis.Redis.from_url(url)
    dashboard_client = redis.Redis.from_url(dashboard_url)
    world_clients = [factory_client, user_client, dashboard_client]
    factory_sites: dict[str, GridBackend] = {}
    user_sites: dict[str, GridBackend] = {}
    for entry in common.entries:
        for sites, client, side in (
            (factory_sites, factory_client, "factory"),
            (user_sites, user_client, "user"),
        ):
            rng, params = common.site(entry, side)
            sites[entry] = SimulatedBackend.on_redis(
                client, keys, params, FACTORY, GLIDEIN, entry, rng, clock
            )
    dispatcher = MemoryDispatcher()
    dashboard = RedisDashboard(dashboard_client, keys, FACTORY, lifetime=900, clock=clock)
    deps = common.factory_deps(
        RedisState(factory_client, keys),
        dashboard,
        factory_sites,
        dispatcher,
        RedisUserKeys(factory_client, keys),
    )
    frontends = []
    public = FactoryPublicKey.from_pem(common.factory_key.public_pem)
    # ACL SAVE fails on a server without an ACL file (ours): that warning is not the bench's.
    logging.getLogger("gwms_tasks.adapters.redis_admin").setLevel(logging.ERROR)
    for spec in frontend_specs(shape):
        fe_url = add_frontend_user(
            dashboard_client, keys, spec.identity, factory_writers=(FACTORY,)
        )
        fe_client = redis.Redis.from_url(fe_url)
        world_clients.append(fe_client)
        fe_dashboard = RedisDashboard(fe_client, keys, spec.identity, lifetime=900, clock=clock)
        frontends.append(BenchFrontend(spec, fe_dashboard, public))
    world = BenchWorld(
        shape, common.config, common.entries, clock, deps, dispatcher,
        common.user_deps(RedisState(user_client, keys), user_sites), frontends,
        "Redis",
    )  # fmt: skip
    world.closers.extend(client.close for client in world_clients)
    return world
