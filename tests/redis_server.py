"""Private redis-servers for tests (code shared with the demo: gwms_tasks.embedded_redis)."""

from __future__ import annotations

import os

from gwms_tasks.embedded_redis import RedisServer, free_port, start_redis

__all__ = ["RedisServer", "free_port", "start_redis", "under_ci"]


def under_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}
