"""Name this process for a lock, and tell whether a named process is provably dead.

A lock owner is ``<host>:<boot id>:<pid namespace>:<pid>:<start ticks>``. A pid only names a
process within one boot of one machine and one pid namespace (containers of one host share its
host name and may share the Redis; every container has its own pids). So the owner is declared
dead only when all three are ours and its pid is gone, or now belongs to a process started at
another time (pid reuse). Whatever cannot be read (no ``/proc``) is written ``?``, and an owner
with any ``?``, or of another host, boot or namespace, is never declared dead: we cannot see it.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

UNKNOWN = "?"
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
_PID_NAMESPACE = Path("/proc/self/ns/pid")


def _start_ticks(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat: the process start time, in clock ticks since boot."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def _boot_id() -> str:
    """This boot of this machine (a random UUID the kernel makes at boot)."""
    try:
        return _BOOT_ID.read_text().strip() or UNKNOWN
    except OSError:
        return UNKNOWN


def _pid_namespace() -> str:
    """The inode of this process's pid namespace: pids are only unique within it."""
    try:
        return str(os.stat(_PID_NAMESPACE).st_ino)
    except OSError:
        return UNKNOWN


def _machine() -> tuple[str, str, str]:
    """Where this process's pids mean something: host, boot id, pid namespace."""
    return socket.gethostname(), _boot_id(), _pid_namespace()


def this_process() -> str:
    """The lock owner name of the calling process."""
    pid = os.getpid()
    return ":".join((*_machine(), str(pid), _start_ticks(pid) or UNKNOWN))


def owner_is_dead(token: str) -> bool:
    """Whether the lock token's owner provably no longer runs.

    True only for an owner of this host, boot and pid namespace whose pid is gone or reused
    by a process started at another time; False for anything that cannot be told.
    """
    owner = token.split("/", 1)[0]
    parts = owner.rsplit(":", 4)
    if len(parts) != 5:
        return False
    host, boot_id, namespace, pid, ticks = parts
    here = _machine()
    if UNKNOWN in (boot_id, namespace, ticks, *here) or (host, boot_id, namespace) != here:
        return False
    if not pid.isdigit():
        return False
    now = _start_ticks(int(pid))
    return now is None or now != ticks
