"""One entry of the factory config: a site/CE, how glideins reach it, and every bound on them."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Annotated

from pydantic import Field, StringConstraints, model_validator

from gwms_tasks.core.config_grid import (
    AuthMethodField,
    AuthToken,
    GridKind,
    GridType,
    GridTypeField,
    RecoverableExitcodesField,
)
from gwms_tasks.core.config_parts import (
    AllowFrontend,
    Backend,
    BackendKind,
    CondorGBackend,
    Lifetime,
    LimitsConfig,
    ReleaseRate,
    RemoveRate,
    StagingFile,
    StaleAge,
    SubmitRate,
)
from gwms_tasks.core.config_types import (
    ALL,
    AttrName,
    Expect,
    FrozenList,
    FrozenMap,
    NonEmpty,
    SafeName,
    ScalarValue,
    Section,
    SubmitAttrName,
    empty_map,
    problems,
)
from gwms_tasks.core.escaping import SlotsLayout, Verbosity
from gwms_tasks.core.limits import EntryLimits, HeldPolicy, StaleAges


class WhitelistVerdict(enum.StrEnum):
    """What an entry's ``allow_frontends`` says about one frontend:security-class (§2.4)."""

    ALLOWED = "allowed"
    NOT_LISTED = "not_listed"  # treated as a downtime: no new glideins, removals still run
    CLASS_NOT_ALLOWED = "class_not_allowed"  # the request is skipped entirely


StartupDir = Annotated[
    str,
    StringConstraints(pattern=r"^\S+$"),
    Expect("'.', 'Condor', 'OSG', 'TMPDIR', 'AUTO' or a path without spaces"),
]


class Attribute(Section):
    """One configured attribute (reference §1.1 and §5.1).

    Attributes:
        value: its value; ints and bools are unquoted in ads.
        publish: advertised in the entry's ``glidefactory`` ad.
        const: fixed by the factory; otherwise a frontend may override it (a parameter).
        parameter: passed to the glidein (``-param_`` / ``GlideinParam``).
    """

    value: ScalarValue
    publish: bool = True
    const: bool = True
    parameter: bool = True


class EntryConfig(Section):
    """One entry: a CE or resource, and how the factory keeps glideins queued there.

    The sections are documented on their own classes; the plain keys follow glideinWMS's
    entry attributes (reference §7.3 ``job.descript``).
    """

    enabled: bool = True
    grid_type: GridTypeField = GridType(GridKind.CONDOR)
    gatekeeper: NonEmpty | None = None
    auth_method: AuthMethodField
    trust_domain: SafeName = "grid"
    schedd: NonEmpty | None = None
    backend: Backend = CondorGBackend()
    startup_dir: StartupDir = "AUTO"
    verbosity: Annotated[Verbosity, Field(strict=False)] = Verbosity.STD
    slots_layout: Annotated[SlotsLayout, Field(strict=False)] = SlotsLayout.FIXED
    proxy_url: NonEmpty | None = None
    rsl: NonEmpty | None = None
    vm_id: NonEmpty | None = None
    vm_type: NonEmpty | None = None
    attributes: FrozenMap[AttrName, Attribute] = Field(default_factory=empty_map)
    submit_attrs: FrozenMap[SubmitAttrName, ScalarValue] = Field(default_factory=empty_map)
    limits: LimitsConfig = LimitsConfig()
    submit: SubmitRate = SubmitRate()
    remove: RemoveRate = RemoveRate()
    release: ReleaseRate = ReleaseRate()
    stale_age: StaleAge = StaleAge()
    recoverable_exitcodes: RecoverableExitcodesField = Field(default_factory=empty_map)
    lifetime: Lifetime = Lifetime()
    allow_frontends: FrozenList[AllowFrontend] = ()
    files: FrozenList[StagingFile] = ()

    @model_validator(mode="after")
    def _grid_needs(self) -> EntryConfig:
        found: list[tuple[str, str]] = []
        if self.backend.kind is BackendKind.CONDOR_G and self.gatekeeper is None:
            found.append(("gatekeeper", "missing required key (the condor_g backend needs a CE)"))
        if self.grid_type.kind.is_cloud:
            for key, token in (("vm_id", AuthToken.VM_ID), ("vm_type", AuthToken.VM_TYPE)):
                if getattr(self, key) is None and token not in self.auth_method:
                    why = f"required for grid type {self.grid_type} unless auth_method has {token}"
                    found.append((key, why))
        if found:
            raise problems(found)
        return self

    def entry_limits(self, num_factories: int = 1) -> EntryLimits:
        """Every bound of this entry; ``per_entry`` is shared by ``num_factories`` factories."""
        return EntryLimits(
            per_entry=self.limits.per_entry.divided(num_factories),
            default_per_frontend=self.limits.default_per_frontend.to_limits(),
            per_frontend=self.limits.per_frontend_limits(),
            max_submit_per_cycle=self.submit.max_per_cycle,
            max_remove_per_cycle=self.remove.max_per_cycle,
            max_release_per_cycle=self.release.max_per_cycle,
        )

    def held_policy(self) -> HeldPolicy:
        """When held glideins of this entry are released rather than removed (§3.6)."""
        return HeldPolicy(recoverable=self.recoverable_exitcodes)

    def stale_ages(self) -> StaleAges:
        return self.stale_age.to_stale_ages()

    def published_attributes(self) -> Mapping[str, str | int | bool]:
        """Attributes advertised un-prefixed: published, and constant or not a parameter."""
        return {
            name: attr.value
            for name, attr in self.attributes.items()
            if attr.publish and (attr.const or not attr.parameter)
        }

    def params(self) -> Mapping[str, str | int | bool]:
        """Overridable defaults (``GlideinParam<X>``): published, parameter and not const."""
        return {
            name: attr.value
            for name, attr in self.attributes.items()
            if attr.publish and attr.parameter and not attr.const
        }

    def const_attributes(self) -> Mapping[str, str | int | bool]:
        """Values fixed by the factory that no frontend can override (the constants file)."""
        return {name: attr.value for name, attr in self.attributes.items() if attr.const}

    @property
    def whitelist_mode(self) -> bool:
        """True when ``allow_frontends`` lists anyone: only those are served."""
        return bool(self.allow_frontends)

    def whitelist(self, frontend: str, security_class: str) -> WhitelistVerdict:
        """What the whitelist says about a request of ``frontend`` with ``security_class``."""
        if not self.whitelist_mode:
            return WhitelistVerdict.ALLOWED
        classes = {a.security_class for a in self.allow_frontends if a.frontend == frontend}
        if not classes:
            return WhitelistVerdict.NOT_LISTED
        if ALL in classes or security_class in classes:
            return WhitelistVerdict.ALLOWED
        return WhitelistVerdict.CLASS_NOT_ALLOWED
