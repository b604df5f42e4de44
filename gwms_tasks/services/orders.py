"""Orders: what the factory worker sends to a user worker, as plain JSON dicts.

Orders go through the broker, so they hold no secret in clear: token contents are sealed for
the user worker's own public key (gwms_tasks.core.envelope) before they are put in an order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from gwms_tasks.core.sanitize import JobAction
from gwms_tasks.errors import PermanentError
from gwms_tasks.ports import GlideinTags, JsonDict, Submission


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
