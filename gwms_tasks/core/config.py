"""The factory configuration: YAML text parsed once into frozen, typed objects.

``load_config(text, source)`` is the only way in: it fails with one
:class:`~gwms_tasks.errors.ConfigError` that lists every problem found, each naming its key
path and what was expected. The schema lives in ``config_types`` (value types),
``config_grid`` (grid type, auth method, exit codes), ``config_parts`` (entry sections),
``config_entry`` (an entry) and here (the factory-wide sections and cross-section checks).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Annotated, Literal

from annotated_types import Ge, Gt
from pydantic import (
    AfterValidator,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    model_validator,
)

from gwms_tasks.core.config_entry import EntryConfig
from gwms_tasks.core.config_errors import translate
from gwms_tasks.core.config_parts import StagingFile
from gwms_tasks.core.config_types import (
    ALL,
    BrokerUrl,
    ConfigPath,
    Expect,
    FrozenList,
    FrozenMap,
    Identity,
    Port,
    PosInt,
    PosSeconds,
    RedisUrl,
    SafeName,
    ScopeName,
    Seconds,
    Section,
    UserName,
    WebUrl,
    invalid,
    problems,
)
from gwms_tasks.core.config_yaml import parse_yaml_mapping
from gwms_tasks.core.limits import EntryLimits
from gwms_tasks.errors import ConfigError

DEFAULT_AD_LIFETIME = 900
"""Seconds a dashboard keeps an ad that is not refreshed: HTCondor's CLASSAD_LIFETIME default,
three default advertise periods (5 loops of 60 s), so one late advertise does not drop it."""


class KeyConfig(Section):
    """``factory.key``: the factory's RSA key (reference §2.1)."""

    length: Annotated[int, Ge(2048)] = 2048
    old_key_grace: Seconds = 900.0


class FactorySection(Section):
    """``factory``: who the factory is, where it keeps files, and its cadence (§7.3)."""

    name: SafeName
    glidein_name: SafeName = "gfactory_instance"
    web_url: WebUrl
    stage_dir: ConfigPath
    work_dir: ConfigPath
    log_dir: ConfigPath
    client_log_base_dir: ConfigPath
    client_proxies_base_dir: ConfigPath
    loop_delay: PosSeconds = 60.0
    advertise_delay: PosInt = 5
    num_factories: PosInt = 1
    key: KeyConfig = KeyConfig()
    downtimes_file: ConfigPath | None = None
    log_retention_days: Annotated[float, Gt(0)] = 7.0
    """Days the kept stdout/stderr of completed glideins stay in ``client_log_base_dir``."""


class RedisConfig(Section):
    """``redis``: the persistent state store and the Celery broker."""

    state_url: RedisUrl
    broker_url: BrokerUrl


class DashboardKind(enum.StrEnum):
    """Where ads are exchanged with frontends."""

    REDIS = "redis"
    CONDOR = "condor"


class RedisDashboard(Section):
    """Ads in Redis; each frontend writes with its own ACL user under its own key prefix.

    The prefix is not configurable: it is ``Keys.dashboard_writer_prefix`` (gwms_tasks/keys.py).
    """

    kind: Literal[DashboardKind.REDIS]
    url: RedisUrl
    ad_lifetime: PosInt = DEFAULT_AD_LIFETIME


class CondorDashboard(Section):
    """Ads in an HTCondor collector (``host[:port]``)."""

    kind: Literal[DashboardKind.CONDOR]
    collector: Annotated[str, StringConstraints(pattern=r"^\S+$"), Expect("host[:port]")]
    ad_lifetime: PosInt = DEFAULT_AD_LIFETIME


Dashboard = Annotated[RedisDashboard | CondorDashboard, Field(discriminator="kind")]


def _strong_token(token: SecretStr) -> SecretStr:
    if len(token.get_secret_value()) < 16:
        raise invalid("expected a token of at least 16 characters")
    return token


class WebConfig(Section):
    """``web``: the staging/monitoring server; write actions need ``operator_token``."""

    listen_host: Annotated[str, StringConstraints(pattern=r"^\S+$"), Expect("a host name")] = (
        "127.0.0.1"
    )
    listen_port: Port = 8080
    operator_token: (
        Annotated[SecretStr, AfterValidator(_strong_token), Expect("a token of 16+ characters")]
        | None
    ) = None
    public_read: bool = True


class FlowerConfig(Section):
    """``flower``: the Celery task monitor."""

    port: Port = 5555


class FrontendConfig(Section):
    """One frontend (security name) allowed to request glideins (reference §2.4).

    Attributes:
        identity: the authenticated identity its ads must carry.
        security_classes: security class -> the local Unix user that serves it.
    """

    identity: Identity
    security_classes: FrozenMap[ScopeName, UserName]

    @model_validator(mode="after")
    def _has_classes(self) -> FrontendConfig:
        if not self.security_classes:
            raise problems([("security_classes", "expected at least one security class")])
        return self


class FactoryConfig(Section):
    """The whole factory configuration."""

    factory: FactorySection
    redis: RedisConfig
    dashboard: Dashboard
    web: WebConfig = WebConfig()
    flower: FlowerConfig = FlowerConfig()
    entries: FrozenMap[ScopeName, EntryConfig]
    files: FrozenList[StagingFile] = ()
    frontends: FrozenMap[ScopeName, FrontendConfig]

    @model_validator(mode="after")
    def _consistent(self) -> FactoryConfig:
        found = [
            *_presence_problems(self),
            *_limit_key_problems(self),
            *_whitelist_problems(self),
            *_shared_user_problems(self),
            *_lifetime_problems(self),
        ]
        if found:
            raise problems(found)
        return self

    def frontend_for_identity(self, identity: str) -> str | None:
        """The first configured frontend with this authenticated identity (reference §2.4)."""
        return next((n for n, fe in self.frontends.items() if fe.identity == identity), None)

    def username_for(self, frontend: str, security_class: str) -> str | None:
        """The local user serving ``frontend``'s ``security_class``, or None if not mapped."""
        config = self.frontends.get(frontend)
        return None if config is None else config.security_classes.get(security_class)

    def local_users(self) -> set[str]:
        """Every local user some frontend maps to (each gets a queue and its directories)."""
        return {user for fe in self.frontends.values() for user in fe.security_classes.values()}

    def enabled_entries(self) -> Mapping[str, EntryConfig]:
        return {name: entry for name, entry in self.entries.items() if entry.enabled}

    def entry_limits(self, entry: str) -> EntryLimits:
        """The limits of ``entry``, with ``per_entry`` shared by ``num_factories`` factories."""
        return self.entries[entry].entry_limits(self.factory.num_factories)


RESERVED_ENTRY_NAMES = frozenset({"_factory"})
"""Names the factory uses itself where entry names go (services/aggregate.py)."""


def _presence_problems(config: FactoryConfig) -> list[tuple[str, str]]:
    found = []
    if not config.entries:
        found.append(("entries", "expected at least one entry"))
    if not config.frontends:
        found.append(("frontends", "expected at least one frontend"))
    for reserved in RESERVED_ENTRY_NAMES & set(config.entries):
        found.append((f"entries.{reserved}", "the name is reserved (the factory-wide series)"))
    return found


def _limit_key_problems(config: FactoryConfig) -> list[tuple[str, str]]:
    found = []
    for name, entry in config.entries.items():
        for key in entry.limits.per_frontend:
            frontend, security_class = key.split(":")
            if config.username_for(frontend, security_class) is None:
                found.append(
                    (
                        f"entries.{name}.limits.per_frontend.{key}",
                        f"expected a configured frontend:security_class ({_known_pairs(config)})",
                    )
                )
    return found


def _known_pairs(config: FactoryConfig) -> str:
    pairs = [f"{fe}:{sc}" for fe, cfg in config.frontends.items() for sc in cfg.security_classes]
    return ", ".join(pairs) or "none configured"


def _whitelist_problems(config: FactoryConfig) -> list[tuple[str, str]]:
    found = []
    for name, entry in config.entries.items():
        for index, allowed in enumerate(entry.allow_frontends):
            where = f"entries.{name}.allow_frontends[{index}]"
            frontend = config.frontends.get(allowed.frontend)
            if frontend is None:
                known = ", ".join(config.frontends) or "none configured"
                found.append((f"{where}.frontend", f"expected a configured frontend ({known})"))
            elif allowed.security_class != ALL and (
                allowed.security_class not in frontend.security_classes
            ):
                known = ", ".join([ALL, *frontend.security_classes])
                found.append(
                    (
                        f"{where}.security_class",
                        f"expected a security class of {allowed.frontend} ({known})",
                    )
                )
    return found


def _shared_user_problems(config: FactoryConfig) -> list[tuple[str, str]]:
    """A local user serves one frontend only: that is what keeps frontends apart."""
    owner: dict[str, str] = {}
    found = []
    for name, frontend in config.frontends.items():
        for security_class, user in frontend.security_classes.items():
            first = owner.setdefault(user, name)
            if first != name:
                found.append(
                    (
                        f"frontends.{name}.security_classes.{security_class}",
                        f"user {user!r} already serves frontend {first!r} "
                        "(each local user serves one frontend, so frontends stay isolated)",
                    )
                )
    return found


def _lifetime_problems(config: FactoryConfig) -> list[tuple[str, str]]:
    period = config.factory.loop_delay * config.factory.advertise_delay
    if config.dashboard.ad_lifetime <= period:
        return [
            (
                "dashboard.ad_lifetime",
                f"expected more than loop_delay x advertise_delay ({period:g} s), "
                "or ads expire between two advertisements",
            )
        ]
    return []


def load_config(text: str, source: str) -> FactoryConfig:
    """Parse and validate a factory config.

    Args:
        text: the YAML text.
        source: where it came from (a file name), for error messages.

    Returns:
        The frozen configuration.

    Raises:
        ConfigError: with one line per problem, each naming its key path.
    """
    data = parse_yaml_mapping(text, source, expected=tuple(FactoryConfig.model_fields))
    try:
        return FactoryConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, translate(exc, FactoryConfig)) from exc
