"""The downtimes operators set with ``gwms downtime``: one text value in the state Redis.

Stored under ``keys.downtimes()`` in the downtimes-file format; the runtime merges it with the
configured downtimes file (:meth:`gwms_tasks.runtime.Runtime.downtimes`). Edits are
read-modify-write under WATCH/MULTI, so two operators editing at once never lose a change:
the one whose text changed underneath redoes its edit on the new text.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Final, TypeVar

import redis

from gwms_tasks.adapters.redis_state import redis_errors, text
from gwms_tasks.errors import TransientError
from gwms_tasks.keys import Keys

MAX_ATTEMPTS: Final = 50
"""Concurrent edits an edit may lose to before it gives up."""
BACKOFF_SECONDS: Final = 0.005
"""A losing edit waits a random time up to this x its attempt number: no starvation."""

Result = TypeVar("Result")


def read_downtimes_text(client: redis.Redis, keys: Keys) -> str:
    """The stored text ("" when none was ever set).

    Raises:
        TransientError: Redis unavailable.
    """
    with redis_errors("read the downtimes"):
        raw = client.get(keys.downtimes())
    return "" if raw is None else text(raw)


def edit_downtimes_text(
    client: redis.Redis, keys: Keys, change: Callable[[str], tuple[str, Result]]
) -> Result:
    """Apply ``change`` to the stored text atomically; return what it returned.

    Args:
        client: the state Redis.
        keys: the key names.
        change: old text -> (new text, result). It may run more than once (when another
            edit wins the race) and must not have side effects; whatever it raises is
            raised here with nothing stored.

    Raises:
        TransientError: Redis unavailable, or the text kept changing underneath.
    """
    key = keys.downtimes()
    with redis_errors("edit the downtimes"), client.pipeline(transaction=True) as pipe:
        for attempt in range(MAX_ATTEMPTS):
            try:
                pipe.watch(key)  # type: ignore[no-untyped-call]  # untyped in redis-py
                raw = pipe.get(key)
                old = "" if raw is None else text(raw)
                new, result = change(old)
                if new == old:
                    pipe.unwatch()
                    return result
                pipe.multi()
                pipe.set(key, new)
                pipe.execute()
                return result
            except redis.WatchError:
                time.sleep(random.uniform(0, BACKOFF_SECONDS * (attempt + 1)))
    raise TransientError(
        f"the downtimes changed {MAX_ATTEMPTS} times while being edited; try again"
    )
