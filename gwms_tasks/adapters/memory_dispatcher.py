"""In-memory twin of the TaskDispatcher: orders kept per user queue, in order."""

from __future__ import annotations

from dataclasses import dataclass, field

from gwms_tasks.ports import JsonDict


@dataclass
class MemoryDispatcher:
    """Orders by kind and user, for tests to inspect and run."""

    submits: dict[str, list[JsonDict]] = field(default_factory=dict)
    job_actions: dict[str, list[JsonDict]] = field(default_factory=dict)
    credentials: dict[str, list[JsonDict]] = field(default_factory=dict)

    def send_submit(self, username: str, order: JsonDict) -> None:
        self.submits.setdefault(username, []).append(order)

    def send_job_action(self, username: str, order: JsonDict) -> None:
        self.job_actions.setdefault(username, []).append(order)

    def send_credential(self, username: str, order: JsonDict) -> None:
        self.credentials.setdefault(username, []).append(order)
