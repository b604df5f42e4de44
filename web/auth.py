"""Who may read and who may act: the operator token of ``web.operator_token``.

Rules:

* write actions (retrying a failed submit) need ``Authorization: Bearer <operator_token>``;
  with no token configured, writes are disabled for everybody (403, saying so);
* reads (pages' data, the JSON API, ``/metrics``) are open when ``web.public_read`` is true,
  and need the same token otherwise;
* the staging area is always public: glideins download from it.

Tokens are compared in constant time (:func:`hmac.compare_digest`). A missing or wrong token
gets 401 with ``WWW-Authenticate: Bearer``.

The token may be configured as its digest, ``sha256:<64 hex digits>`` (what ``gwms reload``
stores for the workers, see :func:`gwms_tasks.schedule.token_digest`): then the digest of the
token sent is compared with it (sending the digest itself does not pass). The rules are those
of the config of each request, so a reload that sets, rotates or removes the token applies at
once.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, Final

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gwms_tasks.core.config import WebConfig
from gwms_tasks.schedule import TOKEN_DIGEST, token_digest
from web.deps import Sources

bearer = HTTPBearer(
    auto_error=False,
    description="The operator token of the factory config (web.operator_token).",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]

WRITES_DISABLED: Final = (
    "write actions are disabled: no web.operator_token is set in the factory config"
)
WRITE_NEEDS_AUTH: Final = "this action needs the operator token (Authorization: Bearer <token>)"
READ_NEEDS_AUTH: Final = (
    "this factory's monitoring is not public (web.public_read is false): "
    "send the operator token (Authorization: Bearer <token>)"
)
AUTH_REFUSED: Final = "the operator token is wrong"


@dataclass(frozen=True)
class Access:
    """The access rules of one web config."""

    public_read: bool
    token: str | None

    @classmethod
    def of(cls, web: WebConfig) -> Access:
        token = web.operator_token
        return cls(web.public_read, None if token is None else token.get_secret_value())

    def check_read(self, credentials: HTTPAuthorizationCredentials | None) -> None:
        """Raise 401 unless reads are public or the right token was sent."""
        if self.public_read:
            return
        if self.token is None:
            raise HTTPException(403, READ_NEEDS_AUTH + "; but no token is configured")
        _check_token(self.token, credentials, READ_NEEDS_AUTH)

    def check_write(self, credentials: HTTPAuthorizationCredentials | None) -> None:
        """Raise 403 when writes are disabled, 401 unless the right token was sent."""
        if self.token is None:
            raise HTTPException(403, WRITES_DISABLED)
        _check_token(self.token, credentials, WRITE_NEEDS_AUTH)


def _check_token(
    token: str, credentials: HTTPAuthorizationCredentials | None, missing: str
) -> None:
    if credentials is None or not credentials.credentials:
        raise _unauthorized(missing)
    if not token_matches(token, credentials.credentials):
        raise _unauthorized(AUTH_REFUSED)


def token_matches(token: str, presented: str) -> bool:
    """Whether ``presented`` is the configured ``token`` (or, for a digest, hashes to it)."""
    if TOKEN_DIGEST.fullmatch(token):
        return hmac.compare_digest(token_digest(presented).encode(), token.encode())
    return hmac.compare_digest(presented.encode(), token.encode())


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


def require_read(sources: Sources, credentials: Credentials) -> None:
    """FastAPI dependency of every read endpoint.

    It takes the request's sources as the endpoint does: FastAPI builds them once per request
    and hands both the same, so the rules checked are those of the config the endpoint reads.
    """
    Access.of(sources.config.web).check_read(credentials)


def require_write(sources: Sources, credentials: Credentials) -> None:
    """FastAPI dependency of every write endpoint (one sources instance, as for reads)."""
    Access.of(sources.config.web).check_write(credentials)
