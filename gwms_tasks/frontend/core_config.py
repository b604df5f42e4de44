"""The VO frontend configuration: YAML text parsed once into frozen, typed objects.

``load_frontend_config(text, source)`` is the only way in. Like the factory's config
(:mod:`gwms_tasks.core.config`) it fails with one :class:`~gwms_tasks.errors.ConfigError`
listing every problem, each naming its key path and what was expected, and it reuses the
factory's value types and error wording.

Shape (``examples/frontend.yaml`` is the commented example):

- ``frontend``: the SecurityName the frontend claims, the identity the dashboard authenticates it
  as (its Redis ACL user), and its loop delay;
- ``dashboard``: the Redis the factories publish in, reached as that ACL user;
- ``factories``: the factory instances to request from, each with the identity its ads must
  have been written by;
- ``celery``: the broker of the frontend's own worker and beat;
- ``web``: the frontend's staging area (glideins download its signed description);
- ``groups``: per group, the job source, the entry selection and job-to-entry match
  expressions, credentials, glidein parameters, limits and removal policy.
"""

from __future__ import annotations

import enum
from collections import Counter
from typing import Annotated, Literal
from urllib.parse import unquote, urlsplit

from pydantic import AfterValidator, Field, StringConstraints, ValidationError, model_validator

from gwms_tasks.core.ads import global_ad_name
from gwms_tasks.core.classad_text import AdExpr, AdFormatError, compile_constraint
from gwms_tasks.core.config import DEFAULT_AD_LIFETIME
from gwms_tasks.core.config_errors import translate
from gwms_tasks.core.config_types import (
    AttrName,
    BrokerUrl,
    ConfigPath,
    Expect,
    FrozenList,
    FrozenMap,
    NonNegInt,
    PosInt,
    PosSeconds,
    RedisUrl,
    SafeName,
    ScalarValue,
    ScopeName,
    Section,
    WebUrl,
    empty_map,
    invalid,
    problems,
)
from gwms_tasks.core.config_yaml import parse_yaml_mapping
from gwms_tasks.core.credentials import SAFE_CREDENTIAL_ID
from gwms_tasks.errors import ConfigError

DashboardUser = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$"),
    Expect("a dashboard user name (a letter or digit, then letters, digits, '_', '.', '@', '-')"),
]
"""A Redis ACL user, which is also the dashboard writer name and the authenticated identity."""

CredentialId = Annotated[
    str,
    StringConstraints(pattern=SAFE_CREDENTIAL_ID.pattern),
    Expect("a credential id of letters, digits, '.', '_' or '-'"),
]
"""Credential ids start request Names and name the factory's credential files."""

QueueName = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$"),
    Expect("a queue name of letters, digits, '.', '_', ':' or '-'"),
]


def _classad_expression(text: str) -> str:
    try:
        AdExpr(text)
    except AdFormatError as exc:
        raise invalid(f"expected a ClassAd expression: {exc}") from exc
    return text


ClassAdExpression = Annotated[
    str, AfterValidator(_classad_expression), Expect("a ClassAd expression")
]


def _classad_constraint(text: str) -> str:
    try:
        compile_constraint(text)
    except AdFormatError as exc:
        raise invalid(f"expected a ClassAd constraint: {exc}") from exc
    return text


ClassAdConstraint = Annotated[
    str, AfterValidator(_classad_constraint), Expect("a ClassAd constraint")
]
"""A constraint evaluated against one ad at a time (entry selection, schedd jobs)."""


class FrontendSection(Section):
    """``frontend``: who this frontend is.

    Attributes:
        name: the SecurityName (and FrontendName) the factories know it by; requests go out
            as client ``<name>.<group>``.
        identity: the identity the dashboard authenticates it as: its Redis ACL user. The
            factory compares it with the identity encrypted in every request.
        loop_delay: seconds between two cycles of a group.
    """

    name: SafeName
    identity: DashboardUser
    loop_delay: PosSeconds = 60.0


class DashboardSection(Section):
    """``dashboard``: the Redis the factories and this frontend exchange ads in.

    Attributes:
        url: reached as this frontend's ACL user: ``redis://<identity>:<password>@host:port/db``.
        key_prefix: the key prefix of the dashboard (the factory's ``gwms`` by default).
        ad_lifetime: seconds an ad lives unless the next cycle refreshes it.
    """

    url: RedisUrl
    key_prefix: SafeName = "gwms"
    ad_lifetime: PosInt = DEFAULT_AD_LIFETIME


class TrustedFactory(Section):
    """One factory instance to request glideins from, and who must have written its ads."""

    name: SafeName
    glidein_name: SafeName = "gfactory_instance"
    identity: DashboardUser

    @property
    def global_name(self) -> str:
        """``glidein@factory``: the Name of its glidefactoryglobal ad."""
        return global_ad_name(self.glidein_name, self.name)


class CelerySection(Section):
    """``celery``: the broker of the frontend's own worker and beat.

    Attributes:
        broker_url: the broker (it may be the VO's; the frontend uses its own queue).
        queue: the queue of the cycle tasks; ``gwms.frontend.<name>`` when not given.
    """

    broker_url: BrokerUrl
    queue: QueueName | None = None


class WebSection(Section):
    """``web``: the frontend's staging area, written to ``stage_dir`` and served at ``url``."""

    url: WebUrl
    stage_dir: ConfigPath
    monitoring_url: WebUrl | None = None


class CredentialType(enum.StrEnum):
    """Credential kinds a group can hold (the factory's auth method tokens)."""

    SCITOKEN = "scitoken"  # a SciToken the factory submits with (frontend_scitoken)
    GRID_PROXY = "grid_proxy"  # an X.509 proxy file (SubmitProxy)
    IDTOKEN = "idtoken"  # an HTCondor IDTOKEN the glideins use to join the VO's pool

    @property
    def submits(self) -> bool:
        """True for the kinds a factory can submit glideins with."""
        return self is not CredentialType.IDTOKEN


class Credential(Section):
    """One credential file of a group; relative paths are relative to the config file."""

    id: CredentialId
    path: ConfigPath
    type: Annotated[CredentialType, Field(strict=False)]
    security_class: ScopeName


class CelerySource(Section):
    """Jobs are Celery tasks waiting in a queue of a Redis broker.

    Attributes:
        broker_url: the VO's broker (Redis: its queue lists and unacked bookkeeping are read).
        queue: the queue the VO's tasks are sent to.
        attributes: attributes every job of the queue has, for the match expression.
        header_attributes: message headers read as job attributes (``apply_async(headers=)``).
        max_scan: waiting messages read for their headers; the idle count is always exact,
            messages past this have only ``attributes``.
        priority_steps: the transport's priority steps (kombu's default 0, 3, 6, 9): each
            non-zero step is a sub-queue list of its own.
    """

    kind: Literal["celery"]
    broker_url: RedisUrl
    queue: QueueName
    attributes: FrozenMap[AttrName, ScalarValue] = Field(default_factory=empty_map)
    header_attributes: FrozenList[AttrName] = ()
    max_scan: PosInt = 10000
    priority_steps: FrozenList[NonNegInt] = (0, 3, 6, 9)


class ScheddSource(Section):
    """Jobs are HTCondor jobs in a schedd.

    Attributes:
        schedd_name: the schedd to ask the collector for; the local schedd when not given.
        collector: the pool's collector (``host[:port]``) when not the local one.
        constraint: which jobs of the schedd belong to this group.
        attributes: job attributes the match expression may use.
    """

    kind: Literal["schedd"]
    schedd_name: Annotated[str, StringConstraints(pattern=r"^\S+$")] | None = None
    collector: Annotated[str, StringConstraints(pattern=r"^\S+$")] | None = None
    constraint: ClassAdConstraint = "true"
    attributes: FrozenList[AttrName] = ("RequestCpus", "RequestMemory")


JobSourceConfig = Annotated[CelerySource | ScheddSource, Field(discriminator="kind")]


class GroupLimits(Section):
    """``groups.<g>.limits``: how far and how fast the group may grow.

    Attributes:
        max_idle_per_entry: most idle glideins asked of one entry (ReqIdleGlideins cap).
        max_glideins_per_entry: most glideins (idle + running) at one entry (ReqMaxGlideins).
        max_glideins_total: most glideins (idle + running) over all entries of the group.
        max_new_idle_per_cycle: ramp-up: most new glideins asked of one entry per cycle.
        idle_lifetime: seconds a glidein may wait in a site queue (0: no limit).
    """

    max_idle_per_entry: NonNegInt = 100
    max_glideins_per_entry: NonNegInt = 10000
    max_glideins_total: NonNegInt = 1000
    max_new_idle_per_cycle: PosInt = 20
    idle_lifetime: NonNegInt = 0


class RemoveMode(enum.StrEnum):
    """What a factory may remove when demand vanished (ReqRemoveExcess, §3.5)."""

    NO = "NO"
    WAIT = "WAIT"
    IDLE = "IDLE"
    ALL = "ALL"


class RemoveExcessConfig(Section):
    """``groups.<g>.remove_excess``: ask for removal after ``after_cycles`` without demand."""

    mode: Annotated[RemoveMode, Field(strict=False)] = RemoveMode.IDLE
    after_cycles: PosInt = 3
    margin: NonNegInt = 0


class GroupConfig(Section):
    """One frontend group: its jobs, the entries it uses, and how it asks for glideins.

    Attributes:
        entry_constraint: ClassAd constraint over glidefactory ads: the entries considered.
        match: ClassAd expression over ``job.<attr>`` and ``entry.<attr>``: may a job run
            at an entry.
        params: glidein parameters sent with every request (``GlideinParam*``).
    """

    enabled: bool = True
    job_source: JobSourceConfig
    entry_constraint: ClassAdConstraint = "true"
    match: ClassAdExpression = "true"
    credentials: FrozenList[Credential]
    params: FrozenMap[AttrName, ScalarValue] = Field(default_factory=empty_map)
    limits: GroupLimits = GroupLimits()
    remove_excess: RemoveExcessConfig = RemoveExcessConfig()

    @model_validator(mode="after")
    def _usable_credentials(self) -> GroupConfig:
        found = []
        if not any(cred.type.submits for cred in self.credentials):
            found.append(("credentials", "expected at least one scitoken or grid_proxy"))
        for cred_id, count in Counter(cred.id for cred in self.credentials).items():
            if count > 1:
                found.append(("credentials", f"credential id {cred_id!r} is given {count} times"))
        if found:
            raise problems(found)
        return self


class FrontendConfig(Section):
    """The whole frontend configuration."""

    frontend: FrontendSection
    dashboard: DashboardSection
    factories: FrozenList[TrustedFactory]
    celery: CelerySection
    web: WebSection
    groups: FrozenMap[ScopeName, GroupConfig]

    @model_validator(mode="after")
    def _consistent(self) -> FrontendConfig:
        found = [*_identity_problems(self), *_factory_problems(self), *_lifetime_problems(self)]
        if not self.groups:
            found.append(("groups", "expected at least one group"))
        if found:
            raise problems(found)
        return self

    def client_name(self, group: str) -> str:
        """``<frontend>.<group>``: the ClientName of the group's requests."""
        return f"{self.frontend.name}.{group}"

    @property
    def queue(self) -> str:
        """The queue of the frontend's cycle tasks."""
        return self.celery.queue or f"gwms.frontend.{self.frontend.name}"

    def enabled_groups(self) -> dict[str, GroupConfig]:
        return {name: group for name, group in self.groups.items() if group.enabled}


def _identity_problems(config: FrontendConfig) -> list[tuple[str, str]]:
    """The dashboard authenticates the frontend as the user of its URL: that is its identity."""
    user = urlsplit(config.dashboard.url).username
    identity = config.frontend.identity
    if user is None:
        return [
            (
                "dashboard.url",
                f"expected the frontend's ACL user in the URL, like redis://{identity}:"
                "<password>@host:port/db",
            )
        ]
    if unquote(user) != identity:
        return [
            (
                "frontend.identity",
                f"expected the ACL user of dashboard.url ({unquote(user)!r}): the dashboard "
                "authenticates the frontend as that user",
            )
        ]
    return []


def _factory_problems(config: FrontendConfig) -> list[tuple[str, str]]:
    if not config.factories:
        return [("factories", "expected at least one factory")]
    found = []
    seen: set[str] = set()
    for index, factory in enumerate(config.factories):
        if factory.global_name in seen:
            found.append((f"factories[{index}]", f"{factory.global_name} is given twice"))
        seen.add(factory.global_name)
    return found


def _lifetime_problems(config: FrontendConfig) -> list[tuple[str, str]]:
    """Requests must outlive a late cycle, or they vanish between two cycles."""
    loops = 2 * config.frontend.loop_delay
    if config.dashboard.ad_lifetime <= loops:
        return [
            (
                "dashboard.ad_lifetime",
                f"expected more than twice frontend.loop_delay ({loops:g} s), or requests "
                "expire between two cycles",
            )
        ]
    return []


def load_frontend_config(text: str, source: str) -> FrontendConfig:
    """Parse and validate a frontend config.

    Args:
        text: the YAML text.
        source: where it came from (a file name), for error messages.

    Raises:
        ConfigError: with one line per problem, each naming its key path.
    """
    data = parse_yaml_mapping(text, source, expected=tuple(FrontendConfig.model_fields))
    try:
        return FrontendConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, translate(exc, FrontendConfig)) from exc
