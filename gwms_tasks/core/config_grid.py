"""The glideinWMS mini-languages inside an entry's config: grid type, auth method, exit codes.

Each is parsed once, while the config is validated, into a small frozen value; the config
keeps the value and writes it back in the glideinWMS spelling (``str()``) for ads and summaries.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Final

from pydantic import PlainSerializer, PlainValidator

from gwms_tasks.core.config_types import Expect, ReadOnlyMap, invalid, show


class GridKind(enum.StrEnum):
    """The ``Grid_Resource`` families this factory can submit to (reference §4.2)."""

    CONDOR = "condor"  # HTCondor-CE
    BATCH = "batch"  # BOSCO / ssh to a batch system
    ARC = "arc"
    NORDUGRID = "nordugrid"
    CREAM = "cream"
    EC2 = "ec2"
    GCE = "gce"

    @property
    def is_cloud(self) -> bool:
        return self in (GridKind.EC2, GridKind.GCE)

    @property
    def quotes_arguments(self) -> bool:
        """Whether arguments use the quoted ("new") syntax; condor and batch do not (§4.4)."""
        return self not in (GridKind.CONDOR, GridKind.BATCH)


BATCH_SYSTEMS: Final = ("condor", "lsf", "pbs", "sge", "slurm")
_GLOBUS: Final = ("gt2", "gt5")
_GRID_WORDS: Final = (
    "condor, batch <" + "|".join(BATCH_SYSTEMS) + ">, arc, nordugrid, cream, ec2, gce"
)


@dataclass(frozen=True, slots=True)
class GridType:
    """An entry's grid type: the family and, for ``batch``, the local resource manager."""

    kind: GridKind
    lrms: str | None = None

    def __str__(self) -> str:
        return self.kind.value if self.lrms is None else f"{self.kind.value} {self.lrms}"


def parse_grid_type(value: object) -> GridType:
    """Validate a grid type such as ``condor`` or ``batch slurm``; Globus GRAM is refused."""
    words = value.split() if isinstance(value, str) else []
    head = words[0] if words else ""
    if head in _GLOBUS:
        raise invalid(
            f"grid type {head!r} (Globus GRAM) is not supported by glideinWMS 3.10; "
            f"expected one of: {_GRID_WORDS}"
        )
    if head == GridKind.BATCH and len(words) == 2 and words[1] in BATCH_SYSTEMS:
        return GridType(GridKind.BATCH, words[1])
    if len(words) == 1 and head in GridKind.__members__.values() and head != GridKind.BATCH:
        return GridType(GridKind(head))
    raise invalid(f"expected one of: {_GRID_WORDS}; got {show(value)}")


GridTypeField = Annotated[
    GridType,
    PlainValidator(parse_grid_type),
    PlainSerializer(str),
    Expect(f"one of: {_GRID_WORDS}"),
]


class AuthToken(enum.StrEnum):
    """The words of an entry's ``auth_method`` (reference §7.1)."""

    GRID_PROXY = "grid_proxy"
    CERT_PAIR = "cert_pair"
    KEY_PAIR = "key_pair"
    AUTH_FILE = "auth_file"
    USERNAME_PASSWORD = "username_password"  # noqa: S105 (a method name, not a secret)
    IDTOKEN = "idtoken"
    SCITOKEN = "scitoken"
    VM_ID = "vm_id"
    VM_TYPE = "vm_type"
    PROJECT_ID = "project_id"
    VOMS_ATTR = "voms_attr"
    USERNAME = "username"


CREDENTIAL_TOKENS: Final = frozenset(
    {
        AuthToken.GRID_PROXY,
        AuthToken.CERT_PAIR,
        AuthToken.KEY_PAIR,
        AuthToken.AUTH_FILE,
        AuthToken.USERNAME_PASSWORD,
        AuthToken.IDTOKEN,
        AuthToken.SCITOKEN,
    }
)
"""Tokens naming a credential; the others only modify what a request must carry."""


@dataclass(frozen=True, slots=True)
class AuthMethod:
    """An entry's ``auth_method``: its tokens in the order the config gave them."""

    tokens: tuple[AuthToken, ...]

    def __str__(self) -> str:
        return "+".join(token.value for token in self.tokens)

    def __contains__(self, token: object) -> bool:
        return token in self.tokens

    @property
    def uses_grid_proxy(self) -> bool:
        """True when requests must carry a proxy (drives ``GlideinRequirex509_Proxy``)."""
        return AuthToken.GRID_PROXY in self.tokens


def parse_auth_method(value: object) -> AuthMethod:
    """Validate a ``+``-joined auth method such as ``grid_proxy+voms_attr``."""
    if not isinstance(value, str) or not value.strip():
        raise invalid(
            f"expected tokens joined by '+', like 'grid_proxy+voms_attr'; got {show(value)}"
        )
    words = [word.strip() for word in value.split("+")]
    known = set(AuthToken.__members__.values())
    unknown = [word for word in words if word not in known]
    if unknown:
        choices = ", ".join(token.value for token in AuthToken)
        raise invalid(f"unknown auth token {unknown[0]!r} (expected tokens of: {choices})")
    tokens = tuple(AuthToken(word) for word in words)
    if len(set(tokens)) != len(tokens):
        raise invalid(f"a token is repeated in {value!r}")
    credentials = CREDENTIAL_TOKENS.intersection(tokens)
    if not credentials:
        raise invalid(f"{value!r} names no credential (expected one of: {_credential_words()})")
    if credentials == {AuthToken.IDTOKEN}:
        raise invalid(
            "idtoken alone is not a usable entry auth method (glideinWMS 3.10 rejects such "
            f"requests); add another credential: {_credential_words()}"
        )
    return AuthMethod(tokens)


def _credential_words() -> str:
    return ", ".join(sorted(token.value for token in CREDENTIAL_TOKENS))


AuthMethodField = Annotated[
    AuthMethod,
    PlainValidator(parse_auth_method),
    PlainSerializer(str),
    Expect("tokens joined by '+', like 'grid_proxy+voms_attr'"),
]

RecoverableExitcodes = Mapping[int, frozenset[int]]
"""HoldReasonCode -> allowed HoldReasonSubCodes (an empty set allows any subcode)."""

_EXITCODES_FORMAT: Final = "'code [subcode ...],code,...', like '3 13 14,12'"


def parse_recoverable_exitcodes(value: object) -> RecoverableExitcodes:
    """Parse ``recoverable_exitcodes``: comma-separated groups of a hold code and its subcodes."""
    if not isinstance(value, str):
        raise invalid(f"expected a string {_EXITCODES_FORMAT}; got {show(value)}")
    codes: dict[int, frozenset[int]] = {}
    groups = [group.split() for group in value.split(",")]
    if groups == [[]]:
        return ReadOnlyMap(codes)
    for number, words in enumerate(groups, start=1):
        if not words or not all(word.isascii() and word.isdigit() for word in words):
            raise invalid(
                f"group {number} {' '.join(words)!r} is not a list of non-negative integers; "
                f"expected {_EXITCODES_FORMAT}"
            )
        code, *subcodes = (int(word) for word in words)
        if code in codes:
            raise invalid(f"hold code {code} is listed twice (group {number})")
        codes[code] = frozenset(subcodes)
    return ReadOnlyMap(codes)


def format_recoverable_exitcodes(codes: RecoverableExitcodes) -> str:
    """The glideinWMS spelling of parsed exit codes (inverse of the parser)."""
    return ",".join(
        " ".join(str(number) for number in (code, *sorted(subs))) for code, subs in codes.items()
    )


RecoverableExitcodesField = Annotated[
    RecoverableExitcodes,
    PlainValidator(parse_recoverable_exitcodes),
    PlainSerializer(format_recoverable_exitcodes),
    Expect(f"a string {_EXITCODES_FORMAT}"),
]
