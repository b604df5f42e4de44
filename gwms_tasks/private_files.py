"""Private files: written atomically with mode 0600 in 0700 directories.

Keys (the factory's ``rsa.key``, a user worker's key) and credentials (proxies, tokens) are
written the same way, here: the content goes to a temp file created 0600 next to its final name
(same filesystem), is flushed and fsynced, then renamed (or linked) into place and the directory
fsynced, so that a reader sees the old content or the new one, never a part, and a crash leaves
at most a hidden temp file that is never read.

Every OS failure becomes a :class:`PrivateFileError` naming the call and the path.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

from gwms_tasks.errors import PermanentError

_P = ParamSpec("_P")
_R = TypeVar("_R")


class PrivateFileError(PermanentError):
    """A private file or directory is unsafe, unreadable or unwritable."""


def os_call(func: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
    """``func(*args, **kwargs)`` with OSError translated to PrivateFileError."""
    try:
        return func(*args, **kwargs)
    except OSError as exc:
        raise PrivateFileError(f"{func.__name__} failed: {exc}") from exc


def ensure_private_dir(directory: Path) -> None:
    """Create ``directory`` (and its parents) 0700, or make an existing one 0700."""
    os_call(directory.mkdir, mode=0o700, parents=True, exist_ok=True)
    if stat.S_IMODE(os_call(os.stat, directory).st_mode) != 0o700:
        os_call(os.chmod, directory, 0o700)


def remove_file(path: Path) -> None:
    """Delete ``path`` if it exists."""
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise PrivateFileError(f"cannot delete {path}: {exc}") from exc


def write_private(path: Path, data: bytes, mtime: float | None = None) -> None:
    """Atomically replace ``path`` with ``data`` (mode 0600), optionally setting its mtime.

    The directory must exist (see :func:`ensure_private_dir`).
    """
    temp = _temp_with(path.parent, path.name, data)
    try:
        if mtime is not None:
            os_call(os.utime, temp, (mtime, mtime))
        os_call(os.replace, temp, path)
    finally:
        remove_file(Path(temp))
    sync_dir(path.parent)


def write_private_if_changed(path: Path, data: bytes) -> bool:
    """Like :func:`write_private`, but leave ``path`` alone when it already holds ``data``.

    Returns:
        True when the file was written, False when it was unchanged.
    """
    if read_if_file(path) == data:
        return False
    write_private(path, data)
    return True


def create_private(path: Path, data: bytes) -> bool:
    """Atomically create ``path`` with ``data`` (mode 0600); False if it already exists."""
    temp = _temp_with(path.parent, path.name, data)
    try:
        os.link(temp, path)
    except FileExistsError:
        return False
    except OSError as exc:
        raise PrivateFileError(f"cannot create {path}: {exc}") from exc
    finally:
        remove_file(Path(temp))
    sync_dir(path.parent)
    return True


def read_if_file(path: Path) -> bytes | None:
    """The content of a regular file at ``path``, or None when there is none."""
    try:
        if not path.is_file():
            return None
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PrivateFileError(f"cannot read {path}: {exc}") from exc


def sync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable."""
    fd = os_call(os.open, directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_with(directory: Path, name: str, data: bytes) -> str:
    """A synced 0600 temp file holding ``data`` next to its final name."""
    fd, temp = os_call(tempfile.mkstemp, dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        remove_file(Path(temp))
        raise PrivateFileError(f"cannot write {temp}: {exc}") from exc
    return temp
