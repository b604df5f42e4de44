"""Where a frontend keeps its cycle explanations: Redis under its own dashboard prefix, or memory.

The Redis store writes the hash ``keys.frontend_explanations(writer)`` (group -> JSON): under
the frontend's dashboard writer prefix, so its ACL user may write it and no other frontend can
read it, and every frontend host of a fleet sees the same state. It uses only commands the
frontend's ACL user is granted (HSET, HGET, HGETALL).
"""

from __future__ import annotations

from typing import Protocol

import redis

from gwms_tasks.adapters.memory_state import dump_json, load_json
from gwms_tasks.adapters.redis_state import redis_errors, text, text_hash
from gwms_tasks.frontend.core_explain import CycleExplanation
from gwms_tasks.keys import Keys


class ExplanationStore(Protocol):
    """The last cycle explanation of each group.

    Guarantees: ``load`` returns what the last ``save`` of that group stored, or None; it
    raises PermanentError for a stored value that is not an explanation.
    """

    def save(self, explanation: CycleExplanation) -> None: ...

    def load(self, group: str) -> CycleExplanation | None: ...

    def groups(self) -> list[str]:
        """Groups with a stored explanation, sorted."""
        ...


def _encode(explanation: CycleExplanation) -> str:
    return dump_json(explanation.to_data(), f"the explanation of group {explanation.group!r}")


def _decode(value: str, group: str) -> CycleExplanation:
    return CycleExplanation.from_data(load_json(value, f"the explanation of group {group!r}"))


class RedisExplanationStore:
    """Explanations in the dashboard Redis, as the frontend's ACL user."""

    def __init__(self, client: redis.Redis, keys: Keys, writer: str) -> None:
        self._r = client
        self._key = keys.frontend_explanations(writer)

    def save(self, explanation: CycleExplanation) -> None:
        encoded = _encode(explanation)
        with redis_errors(f"store the explanation of group {explanation.group!r}"):
            self._r.hset(self._key, explanation.group, encoded)

    def load(self, group: str) -> CycleExplanation | None:
        with redis_errors(f"read the explanation of group {group!r}"):
            value = self._r.hget(self._key, group)
        return None if value is None else _decode(text(value), group)

    def groups(self) -> list[str]:
        with redis_errors("list the groups with explanations"):
            return sorted(text_hash(self._r.hgetall(self._key)))


class MemoryExplanationStore:
    """The in-memory twin (JSON round trip included, so both stores keep the same data)."""

    def __init__(self) -> None:
        self._data: dict[str, str] = {}

    def save(self, explanation: CycleExplanation) -> None:
        self._data[explanation.group] = _encode(explanation)

    def load(self, group: str) -> CycleExplanation | None:
        value = self._data.get(group)
        return None if value is None else _decode(value, group)

    def groups(self) -> list[str]:
        return sorted(self._data)
