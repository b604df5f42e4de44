"""In-memory twin of the TaskDispatcher: orders kept per user queue, in order."""

from __future__ import annotations

from dataclasses import dataclass, field

from gwms_tasks.core.sanitize import JobAction
from gwms_tasks.errors import GwmsError, PermanentError
from gwms_tasks.ports import JsonDict
from gwms_tasks.queues import user_queue


@dataclass
class MemoryDispatcher:
    """Orders by kind and user, for tests to inspect and run.

    It refuses what the Celery dispatcher refuses (an unknown job action, a user name that
    cannot be a queue); :meth:`fail_next` makes the next sends raise, as a broker that is down.
    """

    submits: dict[str, list[JsonDict]] = field(default_factory=dict)
    job_actions: dict[str, list[JsonDict]] = field(default_factory=dict)
    credentials: dict[str, list[JsonDict]] = field(default_factory=dict)
    _failures: list[GwmsError] = field(default_factory=list, init=False, repr=False)

    def fail_next(self, error: GwmsError, times: int = 1) -> None:
        """Make the next ``times`` sends (of any kind) raise ``error``; nothing is kept."""
        self._failures.extend([error] * times)

    def send_submit(self, username: str, order: JsonDict) -> None:
        self._take(username)
        self.submits.setdefault(username, []).append(order)

    def send_job_action(self, username: str, order: JsonDict) -> None:
        action = str(order.get("action"))
        if action not in {a.value for a in JobAction}:
            known = ", ".join(sorted(a.value for a in JobAction))
            raise PermanentError(f"unknown job action {action!r} (known: {known})")
        self._take(username)
        self.job_actions.setdefault(username, []).append(order)

    def send_credential(self, username: str, order: JsonDict) -> None:
        self._take(username)
        self.credentials.setdefault(username, []).append(order)

    def _take(self, username: str) -> None:
        user_queue(username)  # refuses a name that cannot be a queue
        if self._failures:
            raise self._failures.pop(0)
