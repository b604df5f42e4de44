"""Orders: what the factory worker sends to a user worker, as plain JSON dicts.

Orders go through the broker, so they hold no secret in clear: token contents are sealed for
the user worker's own public key (gwms_tasks.core.envelope) before they are put in an order.

A submit order is only good for :func:`order_lifetime` seconds after find-work queued it: past
that, find-work no longer counts it as in flight and decides afresh, so running it would
submit the same glideins twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from gwms_tasks.core.sanitize import JobAction
from gwms_tasks.errors import PermanentError
from gwms_tasks.ports import GlideinTags, JsonDict, Submission

MIN_ORDER_LIFETIME: Final = 1800.0
"""The lifetime of submit orders when the loop delay is 6 minutes or less."""


def order_lifetime(loop_delay: float) -> float:
    """Seconds a submit order may still run after it was queued: 5 loops, at least 30 minutes.

    It stays below the broker's visibility timeout (at least an hour, and 10 loops: see
    ``gwms_tasks.celery_app.CeleryTimings``), so that a message redelivered after that timeout
    has always expired. The same bound is where find-work stops counting the order as in
    flight, where the user worker refuses it, and the ``expires`` the broker is given.
    """
    return max(MIN_ORDER_LIFETIME, 5 * loop_delay)


@dataclass(frozen=True, slots=True)
class SubmitOrder:
    """Submit ``count`` glideins of one request; ``tags.submit_key`` makes it idempotent.

    Attributes:
        tags: what every glidein is tagged with (includes the submit key).
        count: how many glideins.
        arguments: glidein_startup.sh arguments, without -cluster/-subcluster.
        idle_lifetime: seconds a glidein may wait in the queue (0: no limit).
        submit_credential: id of the credential file to submit with, or None.
        sealed_secrets: token name -> sealed token (for this user's worker only).
        queued_at: when find-work queued it (epoch seconds).
        reason: the decision that asked for it, for logs and Flower.
    """

    tags: GlideinTags
    count: int
    arguments: Sequence[str]
    idle_lifetime: int = 0
    submit_credential: str | None = None
    sealed_secrets: Mapping[str, str] = field(default_factory=dict)
    queued_at: float = 0.0
    reason: str = ""

    def to_json(self) -> JsonDict:
        data = asdict(self)
        data["arguments"] = list(self.arguments)
        data["sealed_secrets"] = dict(self.sealed_secrets)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SubmitOrder:
        try:
            return cls(
                tags=GlideinTags(**data["tags"]),
                count=int(data["count"]),
                arguments=tuple(str(a) for a in data["arguments"]),
                idle_lifetime=int(data.get("idle_lifetime", 0)),
                submit_credential=data.get("submit_credential"),
                sealed_secrets=dict(data.get("sealed_secrets", {})),
                queued_at=float(data.get("queued_at", 0.0)),
                reason=str(data.get("reason", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PermanentError(f"malformed submit order: {exc}") from exc

    def submission(self, environment: Mapping[str, str], count: int) -> Submission:
        return Submission(
            tags=self.tags,
            count=count,
            arguments=tuple(self.arguments),
            environment=dict(environment),
            idle_lifetime=self.idle_lifetime,
        )


@dataclass(frozen=True, slots=True)
class JobActionOrder:
    """Remove, force-remove or release glideins of one entry."""

    entry: str
    action: JobAction
    job_ids: tuple[str, ...]
    reason: str

    def to_json(self) -> JsonDict:
        return {
            "entry": self.entry,
            "action": self.action.value,
            "job_ids": list(self.job_ids),
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobActionOrder:
        try:
            return cls(
                entry=str(data["entry"]),
                action=JobAction(data["action"]),
                job_ids=tuple(str(j) for j in data["job_ids"]),
                reason=str(data.get("reason", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PermanentError(f"malformed job action order: {exc}") from exc


@dataclass(frozen=True, slots=True)
class CredentialOrder:
    """Store one credential file in the user's credential directory (reference §2.5).

    The content travels sealed for the receiving user worker's own key
    (:func:`gwms_tasks.core.envelope.seal`); nothing else in the order is secret.

    Attributes:
        username: the local user whose worker stores it; any other worker refuses the order.
        client: the ClientName that shipped it (part of the file name).
        frontend: the SecurityName of that client's frontend.
        security_class: the credential's security class.
        credential_id: the id requests name it by (part of the file name).
        sealed_content: the file content, sealed for the user worker.
        sent_at: when the factory sent it (epoch seconds).
    """

    username: str
    client: str
    frontend: str
    security_class: str
    credential_id: str
    sealed_content: str
    sent_at: float = 0.0

    def to_json(self) -> JsonDict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CredentialOrder:
        names = (
            "username", "client", "frontend", "security_class", "credential_id", "sealed_content"
        )  # fmt: skip
        try:
            bad = [n for n in names if not isinstance(data.get(n), str) or not data.get(n)]
            if bad:
                raise ValueError(f"{', '.join(bad)} must be non-empty strings")
            texts: dict[str, str] = {name: data[name] for name in names}
            return cls(**texts, sent_at=float(data.get("sent_at", 0.0)))
        except (AttributeError, TypeError, ValueError) as exc:
            raise PermanentError(f"malformed credential order: {exc}") from exc
