"""Which credentials a request must and may carry for an entry's auth method (reference §7.1).

A request names its credentials by *id* in encrypted parameters (``SubmitProxy``,
``GlideinProxy``, ``PublicCert`` ...); the files themselves travel in ``glideclientglobal`` ads.
Tokens travel by content (``frontend_scitoken``, ``<entry>.idtoken``). This module decides, from
the decrypted parameters, which credential id the glideins of the request are tagged with, or why
the request cannot be served.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass

from gwms_tasks.core.config_grid import AuthMethod, AuthToken


class CredentialProblem(enum.StrEnum):
    """Why a request's credentials do not fit the entry."""

    MISSING = "missing_credential"
    NOT_ALLOWED = "credential_not_allowed"
    UNSUPPORTED_METHOD = "unsupported_auth_method"
    UNSAFE_ID = "unsafe_credential_id"


# Encrypted parameters that name a credential file (by id), and the auth token that uses them.
CREDENTIAL_PARAMS: Mapping[str, AuthToken | None] = {
    "SubmitProxy": AuthToken.GRID_PROXY,
    "GlideinProxy": None,  # the pilot proxy of the cloud/BOSCO branch
    "PublicCert": AuthToken.CERT_PAIR,
    "PrivateCert": AuthToken.CERT_PAIR,
    "PublicKey": AuthToken.KEY_PAIR,
    "PrivateKey": AuthToken.KEY_PAIR,
    "AuthFile": AuthToken.AUTH_FILE,
    "Username": AuthToken.USERNAME_PASSWORD,
    "Password": AuthToken.USERNAME_PASSWORD,
}
SCITOKEN_PARAM = "frontend_scitoken"
SCITOKEN_ID_PARAM = "ScitokenId"


SAFE_CREDENTIAL_ID = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
"""Credential ids name files (``credential_<client>_<id>``) and tag jobs: no path, no quoting.

Check with ``fullmatch`` (``match`` lets a trailing newline through ``$``)."""
_SAFE_PREFIX = re.compile(r"[A-Za-z0-9._-]{0,5}")  # "-----" of a PEM, "eyJhb" of a JWT


def idtoken_param(entry: str) -> str:
    """Name of the encrypted parameter carrying the IDTOKEN for the glideins of ``entry``."""
    return f"{entry}.idtoken"


@dataclass(frozen=True, slots=True)
class CredentialChoice:
    """The credential the glideins of a request use.

    Attributes:
        credential_id: tags every glidein (GlideinCredentialIdentifier).
        submit_credential: the id of the file the submission uses (proxy, key...), or None for
            token-only submissions.
    """

    credential_id: str
    submit_credential: str | None


@dataclass(frozen=True, slots=True)
class CredentialRejection:
    problem: CredentialProblem
    detail: str


def choose_credential(
    auth: AuthMethod, enc: Mapping[str, str], params: Mapping[str, str]
) -> CredentialChoice | CredentialRejection:
    """Pick the credential id of a request, or say why its credentials do not fit.

    Args:
        auth: the entry's auth method.
        enc: the request's decrypted ``GlideinEncParam*`` values (prefix stripped).
        params: the request's plain ``GlideinParam*`` values.
    """
    present = {name for name in CREDENTIAL_PARAMS if enc.get(name)}
    if AuthToken.SCITOKEN in auth and AuthToken.GRID_PROXY not in auth:
        choice = _scitoken_only(enc, present)
    elif AuthToken.GRID_PROXY in auth:
        choice = _grid_proxy(enc, params, present)
    else:
        choice = _pilot_proxy_family(auth, enc, present)
    if isinstance(choice, CredentialChoice) and not SAFE_CREDENTIAL_ID.fullmatch(
        choice.credential_id
    ):
        return CredentialRejection(
            CredentialProblem.UNSAFE_ID,
            f"credential id {_describe_refused_id(choice.credential_id)} may only hold 1 to 200"
            " letters, digits, '.', '_', '-'",
        )
    return choice


def _describe_refused_id(value: str) -> str:
    """A refused credential id described without its content: its length and a safe prefix.

    An id is refused exactly when something else was put in its place (a proxy, a token), and
    the refusal is logged, stored and shown: echoing the id would publish that content.
    """
    prefix = _SAFE_PREFIX.match(value)
    shown = prefix.group() if prefix else ""
    return f"of {len(value)} characters starting {shown!r}"


def _scitoken_only(
    enc: Mapping[str, str], present: set[str]
) -> CredentialChoice | CredentialRejection:
    if not enc.get(SCITOKEN_PARAM):
        return CredentialRejection(
            CredentialProblem.MISSING, "entry auth method scitoken needs frontend_scitoken"
        )
    extra = sorted(present)
    if extra:
        return CredentialRejection(
            CredentialProblem.NOT_ALLOWED,
            f"entry auth method scitoken does not use {', '.join(extra)}",
        )
    return CredentialChoice(enc.get(SCITOKEN_ID_PARAM) or "scitoken", None)


def _grid_proxy(
    enc: Mapping[str, str], params: Mapping[str, str], present: set[str]
) -> CredentialChoice | CredentialRejection:
    extra = sorted(present - {"SubmitProxy"})
    if extra:
        return CredentialRejection(
            CredentialProblem.NOT_ALLOWED,
            f"entry auth method grid_proxy does not use {', '.join(extra)}",
        )
    proxy = enc.get("SubmitProxy")
    if proxy:
        return CredentialChoice(proxy, proxy)
    if params.get("CONTINUE_IF_NO_PROXY") == "True" and enc.get(SCITOKEN_PARAM):
        return CredentialChoice(enc.get(SCITOKEN_ID_PARAM) or "scitoken", None)
    return CredentialRejection(
        CredentialProblem.MISSING, "entry auth method grid_proxy needs SubmitProxy"
    )


_PAIRS: Mapping[AuthToken, tuple[str, ...]] = {
    AuthToken.CERT_PAIR: ("PublicCert", "PrivateCert"),
    AuthToken.KEY_PAIR: ("PublicKey", "PrivateKey"),
    AuthToken.AUTH_FILE: ("AuthFile",),
    AuthToken.USERNAME_PASSWORD: ("Username", "Password"),
}


def _pilot_proxy_family(
    auth: AuthMethod, enc: Mapping[str, str], present: set[str]
) -> CredentialChoice | CredentialRejection:
    methods = [token for token in _PAIRS if token in auth]
    if not methods:
        return CredentialRejection(
            CredentialProblem.UNSUPPORTED_METHOD,
            f"auth method {auth} names no credential this factory can submit with",
        )
    wanted = {"GlideinProxy", *(name for token in methods for name in _PAIRS[token])}
    extra = sorted(present - wanted)
    if extra:
        return CredentialRejection(
            CredentialProblem.NOT_ALLOWED,
            f"entry auth method {auth} does not use {', '.join(extra)}",
        )
    missing = sorted(name for name in wanted if not enc.get(name))
    if missing:
        return CredentialRejection(
            CredentialProblem.MISSING, f"entry auth method {auth} needs {', '.join(missing)}"
        )
    first = _PAIRS[methods[0]][0]
    return CredentialChoice(enc[first], enc[first])
