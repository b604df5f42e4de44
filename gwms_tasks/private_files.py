"""Private files: written atomically with mode 0600 in 0700 directories.

Keys (the factory's ``rsa.key``, a user worker's key) and credentials (proxies, tokens) are
written the same way, here: the content goes to a temp file created 0600 next to its final name
(same filesystem), is flushed and fsynced, then renamed (or linked) into place and the directory
fsynced, so that a reader sees the old content or the new one, never a part, and a crash leaves
at most a hidden temp file that is never read.

:func:`atomic_write` does the same for files of any mode (the staging areas, kept glidein
logs). Every OS failure becomes a :class:`PrivateFileError` naming the call and the path.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

from gwms_tasks.errors import PermanentError
from gwms_tasks.privileges import PRIVATE_DIR_MODE, ROOT_UID, lookup_user, user_name

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


def ensure_private_dir(directory: Path, owner: str | None = None, *, parents: bool = True) -> Path:
    """Make ``directory`` a directory only ``owner`` can use: mode 0700, owned by ``owner``.

    An existing directory is fixed up (root may hand it to ``owner``). A symlink or a
    non-directory at ``directory`` is refused, and every check and change is made on the
    directory opened without following symlinks, so a symlink swapped in meanwhile cannot
    redirect them (the credential and key directories are guarded by this).

    Args:
        directory: the directory.
        owner: the local user it is private to; the user this process runs as when None.
        parents: create missing parent directories first (with default permissions).

    Returns:
        ``directory``.

    Raises:
        PrivateFileError: unknown owner, a parent that is missing (or cannot be made), a
            symlink or a file at ``directory``, or a directory owned by someone else that this
            process may not take over.
    """
    euid = os.geteuid()
    uid, gid, name = _owner(owner, euid)
    if euid not in (ROOT_UID, uid):
        raise PrivateFileError(
            f"cannot make {directory} private to {name!r} while running as {user_name(euid)!r}"
        )
    if parents:
        os_call(directory.parent.mkdir, parents=True, exist_ok=True)
    try:
        os.mkdir(directory, PRIVATE_DIR_MODE)
    except FileExistsError:
        pass
    except OSError as exc:
        raise PrivateFileError(f"cannot create {directory} (mkdir failed): {exc}") from exc
    fd = _open_directory(directory)
    try:
        info = os.fstat(fd)
        if info.st_uid != uid and euid != ROOT_UID:
            raise PrivateFileError(
                f"{directory} is owned by uid {info.st_uid}, not {name!r}; only root may fix it"
            )
        if euid == ROOT_UID and (info.st_uid, info.st_gid) != (uid, gid):
            os_call(os.fchown, fd, uid, gid)
        if stat.S_IMODE(info.st_mode) != PRIVATE_DIR_MODE:
            os_call(os.fchmod, fd, PRIVATE_DIR_MODE)
    finally:
        os.close(fd)
    return directory


def _owner(owner: str | None, euid: int) -> tuple[int, int, str]:
    """Uid, gid and name of ``owner`` (None: this process's effective user)."""
    if owner is None:
        return euid, os.getegid(), user_name(euid)
    try:
        user = lookup_user(owner)
    except PermanentError as exc:
        raise PrivateFileError(str(exc)) from exc
    return user.uid, user.gid, user.name


def _open_directory(path: Path) -> int:
    """``path`` opened as a directory, refusing a symlink (``O_NOFOLLOW``) or a non-directory."""
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        # Linux answers ENOTDIR (not ELOOP) for a symlink opened with O_DIRECTORY|O_NOFOLLOW.
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and path.is_symlink():
            raise PrivateFileError(f"refusing {path}: it is a symlink") from exc
        if exc.errno == errno.ENOTDIR:
            raise PrivateFileError(f"refusing {path}: it exists and is not a directory") from exc
        raise PrivateFileError(f"cannot open {path}: {exc}") from exc


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
    atomic_write(path, data, 0o600, mtime=mtime)


def atomic_write(path: Path, data: bytes, mode: int, *, mtime: float | None = None) -> None:
    """Replace ``path`` with ``data`` atomically and durably, with permissions ``mode``.

    The content goes to a hidden temp file next to ``path`` (created 0600, so never readable
    more widely before it is whole), which is fsynced, given ``mode`` (and ``mtime``), renamed
    over ``path``, and the directory fsynced: a reader sees the old file or the new one, and
    a crash leaves at most a hidden ``.<name>.*.tmp`` file. The directory must exist.

    Raises:
        PrivateFileError: a call failed (it is named, with the path).
    """
    temp = _temp_with(path.parent, path.name, data)
    try:
        if mode != 0o600:
            os_call(os.chmod, temp, mode)
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
