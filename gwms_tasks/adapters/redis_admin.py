"""Redis administration: the persistence check of the state Redis and the dashboard ACL users.

A frontend's ACL user may (Redis 7 ACL rules):
    * read and write keys under its own prefix ``keys.dashboard_writer_prefix(name)``;
    * only read (``%R~``) the ads of the factory writers it is told about;
    * publish only on its own change channel;
    * run only the few commands the dashboard adapter sends. No ``FLUSHALL``, ``CONFIG``,
      ``KEYS`` or anything else without a key argument that would escape the key patterns.

Frontends cannot read each other's ads: glideinWMS collectors let any authorised reader see
every ad, but nothing in a frontend's work needs another frontend's requests, so least
privilege wins here (the factory, with its own user, reads everything).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

import redis

from gwms_tasks.adapters.memory_dashboard import check_segment
from gwms_tasks.adapters.redis_state import redis_errors, text_hash
from gwms_tasks.errors import PermanentError
from gwms_tasks.keys import Keys

DEFAULT_FACTORY_WRITER = "factory"
_RESERVED_USERS = frozenset({"default"})
# What RedisDashboard sends, and nothing else (HELLO and AUTH are always allowed).
_FRONTEND_COMMANDS = (
    "ping", "select", "scan", "hgetall", "hget", "hset", "hdel", "expire", "publish",
    "multi", "exec", "discard", "watch", "unwatch",
)  # fmt: skip
_LOG = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PersistenceSetting:
    """One server setting the state Redis needs, and why."""

    name: str
    accepted: frozenset[str]
    advice: str


PERSISTENCE_SETTINGS = (
    PersistenceSetting(
        "appendonly",
        frozenset({"yes"}),
        "without the append-only file a restart loses the submit ledger and entry state; "
        "set appendonly yes",
    ),
    PersistenceSetting(
        "appendfsync",
        frozenset({"everysec", "always"}),
        "the append-only file is not flushed at least every second; set appendfsync everysec",
    ),
    PersistenceSetting(
        "maxmemory-policy",
        frozenset({"noeviction"}),
        "Redis may evict state keys (ledger, locks, schedules) when memory is full; "
        "set maxmemory-policy noeviction",
    ),
)


def check_persistence(client: redis.Redis) -> list[str]:
    """Warnings about settings that make the state Redis unsafe; [] when all is well.

    Raises:
        TransientError: Redis unavailable.
    """
    config: dict[str, str] = {}
    try:
        with redis_errors("read the persistence settings (CONFIG GET)"):
            for setting in PERSISTENCE_SETTINGS:  # one by one: Redis 6 takes one name only
                config.update(text_hash(client.config_get(setting.name)))
    except PermanentError as exc:
        return [
            f"could not check the persistence settings of Redis ({exc}); make sure it runs "
            "with appendonly yes, appendfsync everysec and maxmemory-policy noeviction"
        ]
    warnings = []
    for setting in PERSISTENCE_SETTINGS:
        value = config.get(setting.name)
        if value not in setting.accepted:
            warnings.append(f"Redis {setting.name} is {value!r}: {setting.advice}")
    return warnings


def frontend_acl_rules(
    keys: Keys, name: str, password: str, factory_writers: Sequence[str]
) -> list[str]:
    """The ``ACL SETUSER`` rules of a frontend's dashboard user (see the module docstring)."""
    rules = ["reset", "on", f">{password}", f"~{keys.dashboard_writer_prefix(name)}*"]
    rules += [f"%R~{keys.dashboard_writer_prefix(writer)}*" for writer in factory_writers]
    rules += ["resetchannels", f"&{keys.dashboard_channel(name)}", "-@all"]
    rules += [f"+{command}" for command in _FRONTEND_COMMANDS]
    return rules


def add_frontend_user(
    admin_client: redis.Redis,
    keys: Keys,
    name: str,
    password: str | None = None,
    *,
    factory_writers: Sequence[str] = (DEFAULT_FACTORY_WRITER,),
    host: str | None = None,
) -> str:
    """Create (or reset) the ACL user of a frontend; return its connection URL.

    Args:
        admin_client: a client allowed to run ``ACL SETUSER``.
        keys: the key names of the dashboard.
        name: the frontend's identity: ACL user name and dashboard writer name.
        password: its password; a random one (256 bits) when None.
        factory_writers: writer names whose ads the frontend may read.
        host: host name to put in the URL, if frontends reach Redis by another name than the
            admin client does.

    Returns:
        ``redis://<name>:<password>@host:port/db`` (``rediss://`` over TLS, ``unix://`` for a
        socket).

    Raises:
        PermanentError: an invalid or reserved name, or Redis refused (no ACL permission).
        TransientError: Redis unavailable.
    """
    check_segment(name, "frontend name")
    if name in _RESERVED_USERS or name in factory_writers:
        raise PermanentError(f"{name!r} is reserved: it cannot be a frontend's dashboard user")
    for writer in factory_writers:
        check_segment(writer, "factory writer name")
    secret = secrets.token_urlsafe(32) if password is None else password
    if not secret or any(ch.isspace() for ch in secret):
        raise PermanentError("a frontend password must be non-empty and without whitespace")
    rules = frontend_acl_rules(keys, name, secret, factory_writers)
    with redis_errors(f"create the ACL user {name!r}"):
        # Raw command: acl_setuser cannot express %R~ rules; redis-py leaves this unannotated.
        admin_client.execute_command("ACL", "SETUSER", name, *rules)  # type: ignore[no-untyped-call]
    _save_acl(admin_client)
    return connection_url(admin_client, name, secret, host)


def remove_frontend_user(admin_client: redis.Redis, keys: Keys, name: str) -> bool:
    """Delete a frontend's ACL user (disconnecting it) and its ads; False if it did not exist.

    Its ads go too: a revoked frontend's requests must stop at once, not when they expire.
    """
    check_segment(name, "frontend name")
    if name in _RESERVED_USERS:
        raise PermanentError(f"{name!r} is reserved: it is not a frontend's dashboard user")
    pattern = keys.dashboard_writer_prefix(name) + "*"
    with redis_errors(f"delete the ACL user {name!r} and its ads"):
        existed = bool(admin_client.acl_deluser(name))
        ad_keys = list(admin_client.scan_iter(match=pattern, count=1000))
        if ad_keys:
            admin_client.delete(*ad_keys)
    _save_acl(admin_client)
    return existed


def connection_url(client: redis.Redis, user: str, password: str, host: str | None) -> str:
    """A URL reaching the server ``client`` is connected to, as ``user``."""
    params = client.connection_pool.connection_kwargs
    credentials = f"{quote(user, safe='')}:{quote(password, safe='')}"
    db = int(params.get("db", 0))
    if "path" in params:
        return f"unix://{credentials}@{params['path']}?db={db}"
    tls = issubclass(client.connection_pool.connection_class, redis.SSLConnection)
    address = f"{host or params.get('host', 'localhost')}:{params.get('port', 6379)}"
    return f"{'rediss' if tls else 'redis'}://{credentials}@{address}/{db}"


def _save_acl(admin_client: redis.Redis) -> None:
    """Persist ACL users when the server keeps them in an ACL file; warn when it cannot."""
    try:
        with redis_errors("save the ACL users (ACL SAVE)"):
            admin_client.acl_save()
    except PermanentError as exc:
        _LOG.warning(
            "ACL users are not saved and will be lost when Redis restarts unless they are in "
            "its configuration (%s); configure an aclfile",
            exc,
        )
