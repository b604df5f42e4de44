"""Jobs as Celery tasks in a Redis broker: idle = waiting messages, running = unacknowledged ones.

This reads kombu's Redis transport layout (kombu's names, not ours, so not in keys.py):

- a queue is a Redis list named after it; with message priorities, every non-zero priority
  step ``p`` has its own list ``<queue>\\x06\\x16<p>``. The idle count is the sum of their
  lengths, exact;
- a message handed to a worker leaves the list and is kept in the hash ``unacked`` (delivery
  tag -> JSON ``[message, exchange, routing_key]``, all queues of the database together) until
  the worker acknowledges it. The running count is the number of entries routed to this queue.

Why the ``unacked`` bookkeeping and not Celery's inspect API: a glidein's worker runs one task
at a time in the solo pool, and a solo worker cannot answer a broadcast while its task runs, so
inspect would miss exactly the busy workers; it also needs every worker to reply within a
timeout. The bookkeeping is exact and costs one read. It counts a task as running from delivery
to acknowledgement, which is its whole run for the ``task_acks_late`` workers of the glidein
payload (a worker acknowledging early would be counted only until its task starts). A worker
that died keeps its messages in ``unacked`` until the broker's visibility timeout hands them
out again: until then they count as running. The lists and the hash are read in one MULTI, so
a message is not counted twice; between kombu's pop and its bookkeeping write (a few
milliseconds, not atomic in kombu) a message can be missed for one snapshot.

Job attributes: the configured constant ``attributes``, plus ``header_attributes`` read from
the headers of up to ``max_scan`` waiting messages (oldest first). Messages past ``max_scan``
are counted with the constant attributes only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import redis

from gwms_tasks.adapters.redis_state import redis_errors, text
from gwms_tasks.core.classad_text import AdValue
from gwms_tasks.frontend.core_config import CelerySource
from gwms_tasks.frontend.core_jobs import JobGroup, JobSnapshot, group_jobs

PRIORITY_SEPARATOR = "\x06\x16"
"""kombu's separator between a queue name and a priority step (Redis transport ``sep``)."""
UNACKED_KEY = "unacked"
"""kombu's hash of delivered, unacknowledged messages (Redis transport ``unacked_key``)."""


def queue_lists(queue: str, priority_steps: Iterable[int]) -> list[str]:
    """The Redis lists holding a queue's waiting messages, one per priority step."""
    steps = sorted(set(priority_steps) | {0})
    return [queue if step == 0 else f"{queue}{PRIORITY_SEPARATOR}{step}" for step in steps]


class CeleryQueueJobSource:
    """The JobSource of one Celery queue in a Redis broker.

    Args:
        client: a client of the broker's Redis database.
        source: the group's job source config.
    """

    def __init__(self, client: redis.Redis, source: CelerySource) -> None:
        self._r = client
        self._source = source
        self._lists = queue_lists(source.queue, source.priority_steps)

    def snapshot(self) -> JobSnapshot:
        """Idle and running tasks of the queue.

        Raises:
            TransientError: the broker is unreachable.
            PermanentError: the broker refused (credentials, permissions).
        """
        source = self._source
        scan = source.max_scan if source.header_attributes else 0
        with redis_errors(f"count the tasks of queue {source.queue!r}"):
            pipe = self._r.pipeline(transaction=True)
            for name in self._lists:
                pipe.llen(name)
            if scan:
                for name in self._lists:
                    pipe.lrange(name, -scan, -1)
            pipe.hvals(UNACKED_KEY)
            replies = pipe.execute()
        size = len(self._lists)
        lengths = [int(n) for n in replies[:size]]
        scanned = list(replies[size:-1])
        idle, notes = self._idle(sum(lengths), scanned, scan)
        running = sum(1 for value in replies[-1] if self._routed_here(value))
        return JobSnapshot(idle, running, tuple(notes))

    def _idle(
        self, total: int, scanned: list[list[Any]], scan: int
    ) -> tuple[tuple[JobGroup, ...], list[str]]:
        constant = dict(self._source.attributes)
        if total == 0:
            return (), []
        jobs: list[dict[str, AdValue]] = []
        unreadable = 0
        # Oldest first: kombu pushes on the left and pops on the right.
        for messages in scanned:
            for raw in reversed(messages):
                if len(jobs) >= scan:
                    break
                headers = _headers(raw)
                if headers is None:
                    unreadable += 1
                jobs.append({**constant, **self._header_attrs(headers or {})})
        rest = max(0, total - len(jobs))
        groups = list(group_jobs(jobs))
        if rest:
            groups.append(JobGroup(constant, rest))
        notes = []
        if unreadable:
            queue = self._source.queue
            notes.append(f"{unreadable} message(s) of {queue} have no readable headers")
        return tuple(groups), notes

    def _header_attrs(self, headers: Mapping[str, Any]) -> dict[str, AdValue]:
        attrs: dict[str, AdValue] = {}
        for name in self._source.header_attributes:
            value = headers.get(name)
            if isinstance(value, bool | int | float | str):
                attrs[name] = value
        return attrs

    def _routed_here(self, value: bytes | str) -> bool:
        try:
            _, exchange, routing_key = json.loads(text(value))
        except (ValueError, TypeError):
            return False
        return self._source.queue in (routing_key, exchange)


def _headers(raw: bytes | str) -> Mapping[str, Any] | None:
    try:
        message = json.loads(text(raw))
    except ValueError:
        return None
    headers = message.get("headers") if isinstance(message, dict) else None
    return headers if isinstance(headers, dict) else None
