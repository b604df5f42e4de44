"""Name this process for a lock, and tell whether a named process is provably dead.

A lock owner is ``<host>:<pid>:<start ticks>``. A process of another host is never declared
dead (we cannot see it); one of this host is dead when its pid is gone or now belongs to a
process started at another time (pid reuse).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def _start_ticks(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat: the process start time, in clock ticks since boot."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def this_process() -> str:
    """The lock owner name of the calling process."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid) or '?'}"


def owner_is_dead(token: str) -> bool:
    """True when the lock token's owner is a process of this host that no longer runs."""
    owner = token.split("/", 1)[0]
    parts = owner.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False
    ticks = _start_ticks(int(parts[1]))
    return ticks is None or (parts[2] != "?" and ticks != parts[2])
