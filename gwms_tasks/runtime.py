"""The composition root: real adapters assembled into the ports the services take.

One :class:`Runtime` per process (a Celery pool process, a CLI command, the web server). It is
built from a validated factory config and follows ``gwms reload``: :meth:`Runtime.refresh`
polls the accepted config's hash in Redis (one HGET) and, when it changed, swaps the config in
and forgets the backends built for the old one. Nothing here decides anything; it only
connects.

Where things live on disk (``factory.*`` of the config):

- ``work_dir/rsa.key`` (+ ``.bak`` during a rotation): the factory key, 0600 in a 0700 dir.
- ``client_proxies_base_dir/user_<u>/``: 0700, owned by ``u``; ``worker_key/`` holds the user
  worker's own key pair, ``glidein_<glidein>/`` the credentials it stores.
- ``work_dir/sites/<site>/``: the work directories of local-site glideins.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import htcondor2
import redis

import gwms_tasks.glidein
from gwms_tasks.adapters.condor_collector import CondorCollectorDashboard
from gwms_tasks.adapters.condor_g import CondorGBackend, connect_schedd
from gwms_tasks.adapters.key_files import (
    load_factory_keyring,
    load_or_create_factory_keyring,
    load_or_create_user_key,
)
from gwms_tasks.adapters.local_site import LocalSiteBackend
from gwms_tasks.adapters.redis_credentials import RedisCredentialIndex
from gwms_tasks.adapters.redis_dashboard import RedisDashboard
from gwms_tasks.adapters.redis_downtimes import read_downtimes_text
from gwms_tasks.adapters.redis_state import RedisState
from gwms_tasks.adapters.simulated import SimulatedBackend
from gwms_tasks.adapters.user_keys import RedisUserKeys
from gwms_tasks.config_file import read_downtimes
from gwms_tasks.core.backend_settings import site_parameters, submit_settings
from gwms_tasks.core.config import DashboardKind, FactoryConfig
from gwms_tasks.core.config_parts import BackendKind
from gwms_tasks.core.downtimes import Downtime, Downtimes, parse_downtimes
from gwms_tasks.core.envelope import UserKey
from gwms_tasks.core.keyring import Keyring
from gwms_tasks.core.staging import SignType, StagingIndex
from gwms_tasks.errors import ConfigError, PermanentError, TransientError
from gwms_tasks.keys import Keys
from gwms_tasks.ports import Dashboard, GridBackend, TaskDispatcher
from gwms_tasks.process_identity import owner_is_dead, this_process
from gwms_tasks.schedule import refresh_config
from gwms_tasks.services.deps import FactoryDeps
from gwms_tasks.services.key_cache import KeyCodeCache
from gwms_tasks.services.orders import order_lifetime
from gwms_tasks.services.submit import UserDeps

log = logging.getLogger(__name__)

Clock = Callable[[], float]
FileStamp = tuple[int, int, int]

GLIDEIN_STARTUP: Final = Path(gwms_tasks.glidein.__file__).parent / "glidein_startup.sh"
USER_KEY_DIR: Final = "worker_key"
CONFIG_POLL_SECONDS: Final = 2.0
"""How often a process checks whether ``gwms reload`` accepted a new config."""


def user_dir(config: FactoryConfig, username: str) -> Path:
    """``client_proxies_base_dir/user_<username>``: private to that user."""
    return Path(config.factory.client_proxies_base_dir) / f"user_{username}"


def credential_dir(config: FactoryConfig, username: str) -> Path:
    """Where ``username``'s worker keeps the credentials it receives (reference §2.5)."""
    return user_dir(config, username) / f"glidein_{config.factory.glidein_name}"


def site_workdir(config: FactoryConfig, site: str) -> Path:
    """The work directory of a local site's glideins."""
    return Path(config.factory.work_dir) / "sites" / site


def redis_client(url: str, what: str) -> redis.Redis:
    """A client of ``url`` (not connected yet).

    Raises:
        ConfigError: the URL is not a Redis URL.
    """
    try:
        return redis.Redis.from_url(url, health_check_interval=30, socket_timeout=30)
    except ValueError as exc:
        raise ConfigError(what, [f"invalid Redis URL: {exc}"]) from exc


class Runtime:
    """The adapters of one process, built lazily from the current config.

    Args:
        config: the validated config this process started with.
        keys: Redis key names.
        clock: epoch seconds.
    """

    def __init__(
        self, config: FactoryConfig, *, keys: Keys | None = None, clock: Clock = time.time
    ):
        self.keys = keys or Keys()
        self.clock = clock
        self._config = config
        self._sha256: str | None = None
        self._checked_at = float("-inf")
        self._lock = threading.RLock()
        self._state_client: redis.Redis | None = None
        self._dashboard_client: redis.Redis | None = None
        self._backends: dict[str, GridBackend] = {}
        self._keyring: Keyring | None = None
        self._staging: tuple[float, StagingIndex | None] | None = None
        self._downtimes: tuple[tuple[str, Path | None, FileStamp | None], Downtimes] | None = None
        self._user_keys: dict[str, UserKey] = {}  # keys checked against the published ones
        self._key_codes = KeyCodeCache()  # shared by every find-work of this process

    # configuration ---------------------------------------------------------------------------

    @property
    def config(self) -> FactoryConfig:
        return self._config

    def refresh(self) -> FactoryConfig:
        """The current config, after at most one cheap poll for a reload every few seconds.

        A stored config that no longer validates is logged and ignored: the running one stays.
        """
        now = time.monotonic()
        if now - self._checked_at < CONFIG_POLL_SECONDS:
            return self._config
        self._checked_at = now
        try:
            accepted = refresh_config(self.state_client, self.keys, self._sha256)
        except ConfigError as exc:
            log.error("ignoring the stored config: %s", exc)
            return self._config
        if accepted is not None:
            with self._lock:
                log.info("config %s accepted by a reload: switching", accepted.sha256[:12])
                self._config = accepted.config
                self._sha256 = accepted.sha256
                self._backends.clear()
        return self._config

    # Redis -------------------------------------------------------------------------------

    @property
    def state_client(self) -> redis.Redis:
        if self._state_client is None:
            self._state_client = redis_client(self._config.redis.state_url, "redis.state_url")
        return self._state_client

    @property
    def state(self) -> RedisState:
        return RedisState(self.state_client, self.keys)

    def dashboard(self) -> Dashboard:
        """The factory's handle on the dashboard (it writes as the factory's own writer)."""
        dash = self._config.dashboard
        if dash.kind == DashboardKind.CONDOR:
            return CondorCollectorDashboard(htcondor2.Collector(dash.collector))
        if self._dashboard_client is None:
            self._dashboard_client = redis_client(dash.url, "dashboard.url")
        return RedisDashboard(
            self._dashboard_client,
            self.keys,
            writer=self._config.factory.name,
            lifetime=dash.ad_lifetime,
            clock=self.clock,
        )

    def dashboard_client(self) -> redis.Redis:
        """The admin client of a Redis dashboard (ACL users, change feed)."""
        dash = self._config.dashboard
        if dash.kind != DashboardKind.REDIS:
            raise PermanentError("the dashboard is an HTCondor collector, not Redis")
        if self._dashboard_client is None:
            self._dashboard_client = redis_client(dash.url, "dashboard.url")
        return self._dashboard_client

    def credential_index(self) -> RedisCredentialIndex:
        """What the factory knows of the credentials it forwarded (metadata only)."""
        return RedisCredentialIndex(self.state_client, self.keys)

    # grid backends -----------------------------------------------------------------------

    def backend_for(self, entry: str) -> GridBackend:
        """The grid backend of a configured entry (one per entry and config).

        Raises:
            PermanentError: the entry is not in the config.
        """
        with self._lock:
            backend = self._backends.get(entry)
            if backend is None:
                backend = self._backends[entry] = self._make_backend(entry)
            return backend

    def _make_backend(self, entry: str) -> GridBackend:
        config = self._config
        cfg = config.entries.get(entry)
        if cfg is None:
            raise PermanentError(f"entry {entry!r} is not in the factory config")
        fac = config.factory
        spec = cfg.backend
        if spec.kind is BackendKind.LOCAL_SITE:
            return LocalSiteBackend(
                self.state_client,
                self.keys,
                spec.site,
                fac.name,
                fac.glidein_name,
                entry,
                self.clock,
            )
        if spec.kind is BackendKind.SIMULATED:
            return SimulatedBackend.on_redis(
                self.state_client,
                self.keys,
                site_parameters(spec),
                fac.name,
                fac.glidein_name,
                entry,
                random.Random(),
                self.clock,
            )
        settings = submit_settings(config, entry, str(GLIDEIN_STARTUP))
        return CondorGBackend(
            connect_schedd(cfg.schedd), settings, fac.name, fac.glidein_name, entry, self.clock
        )

    # files -------------------------------------------------------------------------------

    def create_factory_key(self) -> Keyring:
        """At factory start: reuse, rotate or create ``rsa.key`` (reference §2.1)."""
        fac = self._config.factory
        self._keyring = load_or_create_factory_keyring(
            Path(fac.work_dir), self.clock(), fac.key.old_key_grace, fac.key.length
        )
        return self._keyring

    def keyring(self) -> Keyring:
        """The factory keys (read once per process; the old key dropped after its grace)."""
        if self._keyring is None:
            fac = self._config.factory
            self._keyring = load_factory_keyring(Path(fac.work_dir), fac.key.old_key_grace)
        self._keyring = self._keyring.drop_expired(self.clock())
        return self._keyring

    def downtimes(self) -> Downtimes:
        """The downtimes in force: those set with ``gwms downtime`` plus the configured file.

        Parsed again only when the stored text or the file changed (one GET and one stat per
        call otherwise). A file that went bad is reported and ignored (the Redis ones still
        apply); the file is checked by ``gwms config check`` before it is relied on.

        Raises:
            TransientError: the state Redis is unavailable.
        """
        stored = read_downtimes_text(self.state_client, self.keys)
        name = self._config.factory.downtimes_file
        path = None if name is None else Path(name)
        stamp = (stored, path, None if path is None else _file_stamp(path))
        cached = self._downtimes
        if cached is not None and cached[0] == stamp:
            return cached[1]
        periods = _parsed_or_logged(lambda: parse_downtimes(stored, "redis"), "redis")
        if path is not None:
            periods += _parsed_or_logged(lambda: read_downtimes(path), str(path))
        downtimes = Downtimes(periods)
        self._downtimes = (stamp, downtimes)
        return downtimes

    def staging(self) -> StagingIndex | None:
        """The index of the built staging area (re-read when ``gwms staging build`` rewrote it)."""
        stage_dir = Path(self._config.factory.stage_dir)
        found = []
        for sign_type in SignType:
            path = stage_dir / f"signatures.{sign_type.value}"
            try:
                found.append((path.stat().st_mtime, path, sign_type))
            except FileNotFoundError:
                continue
        if not found:
            return None
        mtime, path, sign_type = max(found)
        if self._staging is None or self._staging[0] != mtime:
            try:
                index = StagingIndex.parse(path.read_text(encoding="utf-8"), sign_type)
            except (OSError, ValueError, PermanentError) as exc:
                raise TransientError(f"cannot read the staging index {path}: {exc}") from exc
            self._staging = (mtime, index)
        return self._staging[1]

    # assembled deps -------------------------------------------------------------------------

    def factory_deps(self, dispatcher: TaskDispatcher) -> FactoryDeps:
        """The ports of the factory-side services, for the current config."""
        return FactoryDeps(
            config=self.refresh(),
            state=self.state,
            dashboard=self.dashboard(),
            backend_for=self.backend_for,
            dispatcher=dispatcher,
            user_keys=RedisUserKeys(self.state_client, self.keys),
            keyring=self.keyring,
            downtimes=self.downtimes,
            staging=self.staging,
            clock=self.clock,
            key_codes=self._key_codes,
        )

    def user_deps(self, username: str) -> UserDeps:
        """The ports of ``username``'s worker; creates and publishes its key at first use.

        Must run as ``username`` (after the privilege drop): the key and credential files
        are created with the process's own uid.
        """
        config = self.refresh()
        return UserDeps(
            username=username,
            state=self.state,
            backend_for=self.backend_for,
            user_key=self.user_key(username),
            credential_dir=credential_dir(config, username),
            clock=self.clock,
            lock_owner=this_process(),
            owner_is_dead=owner_is_dead,
            order_lifetime=order_lifetime(config.factory.loop_delay),
        )

    def user_key(self, username: str) -> UserKey:
        """``username``'s worker key, published if no key is yet (read once per process).

        Raises:
            PermanentError: another key is published for the user: a worker of another user
                may have published its own key under this name to receive this user's
                credentials, or this worker's key was regenerated (then the operator resets
                the published one).
        """
        with self._lock:
            key = self._user_keys.get(username)
            if key is not None:
                return key
            key = load_or_create_user_key(user_dir(self._config, username) / USER_KEY_DIR)
            keys = RedisUserKeys(self.state_client, self.keys)
            published = keys.publish(username, key.public_pem)
            if not published and keys.public_pem(username) != key.public_pem:
                raise PermanentError(
                    f"another key is published for user {username}; if this worker's key "
                    f"was regenerated on purpose run `gwms worker-key reset {username}`"
                )
            self._user_keys[username] = key
            return key


def _file_stamp(path: Path) -> FileStamp | None:
    """What tells a rewritten file from the one read before: mtime, size and inode."""
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size, info.st_ino)


def _parsed_or_logged(parse: Callable[[], Downtimes], source: str) -> tuple[Downtime, ...]:
    """The periods ``parse`` returns; none, logged, when the source cannot be read or parsed."""
    try:
        return parse().periods
    except ConfigError as exc:
        log.error("ignoring bad downtimes from %s: %s", source, exc)
        return ()
