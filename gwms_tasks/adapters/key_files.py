"""Private key files on disk: the factory's ``rsa.key`` with its rotation, and a user worker's key.

The factory key rotation follows the reference §2.1: at startup a key younger than the grace
period is reused; an older one is moved to ``rsa.key.bak`` and a new ``rsa.key`` written. The
mtime of ``rsa.key`` is the time it became current, so the old key stays valid until that mtime
plus the grace period, across restarts within the window; after it, ``rsa.key.bak`` is deleted.

Every key file is written atomically (temp file, fsync, rename) with mode 0600 in a 0700
directory, and is only read when it is a regular file of ours that group and others cannot read.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

from gwms_tasks.core.crypto import FactoryKey
from gwms_tasks.core.envelope import UserKey
from gwms_tasks.core.keyring import DEFAULT_GRACE_SECONDS, Keyring, StartupAction, startup_decision
from gwms_tasks.errors import PermanentError

FACTORY_KEY_FILENAME = "rsa.key"
OLD_FACTORY_KEY_FILENAME = "rsa.key.bak"
USER_KEY_FILENAME = "worker_key.pem"
_MAX_KEY_FILE_BYTES = 64 * 1024  # a 16384-bit PEM key is under 13 KiB
_P = ParamSpec("_P")
_R = TypeVar("_R")


class KeyFileError(PermanentError):
    """A key file or directory is unsafe, unreadable or unwritable."""


def load_or_create_factory_keyring(
    work_dir: Path,
    now: float,
    grace: float = DEFAULT_GRACE_SECONDS,
    bits: int = 2048,
    make_key: Callable[[int], FactoryKey] = FactoryKey.generate,
) -> Keyring:
    """The factory keyring at startup, generating or rotating ``rsa.key`` as §2.1 says.

    Call it once per factory start: every later call would find the key older than the grace
    period and rotate it again. While running, use :func:`retire_expired_factory_key`.

    Args:
        work_dir: the factory work directory (made 0700).
        now: epoch seconds; a new key file gets it as its mtime.
        grace: the reuse window, and how long the old key is kept after a rotation.
        bits: RSA key length of a new key.
        make_key: makes a new key of ``bits`` bits.

    Raises:
        KeyFileError: a key file or the directory is unsafe or unusable.
        CryptoError: a key file does not hold an RSA key encrypted with the default passphrase.
    """
    _ensure_private_dir(work_dir)
    key_path = work_dir / FACTORY_KEY_FILENAME
    old_path = work_dir / OLD_FACTORY_KEY_FILENAME
    action = startup_decision(_age(key_path, now), grace)
    if action is StartupAction.REUSE:
        current = FactoryKey.from_pem(_read_private(key_path))
    else:
        if action is StartupAction.ROTATE:
            FactoryKey.from_pem(_read_private(key_path))  # never rotate a key we could not use
            _os_call(os.replace, key_path, old_path)
        current = make_key(bits)
        _write_private(key_path, current.to_pem(), mtime=now)
    valid_until = _mtime(key_path) + grace
    if not old_path.exists():
        return Keyring(current)
    if now >= valid_until:
        _remove(old_path)
        return Keyring(current)
    return Keyring(current, FactoryKey.from_pem(_read_private(old_path)), valid_until)


def retire_expired_factory_key(work_dir: Path, keyring: Keyring, now: float) -> Keyring:
    """Drop the old key once its grace window is over, deleting ``rsa.key.bak`` with it."""
    trimmed = keyring.drop_expired(now)
    if trimmed is not keyring:
        _remove(work_dir / OLD_FACTORY_KEY_FILENAME)
    return trimmed


def load_or_create_user_key(
    key_dir: Path,
    bits: int = 2048,
    make_key: Callable[[int], UserKey] = UserKey.generate,
) -> UserKey:
    """The user worker's key pair from ``key_dir``, created on first use.

    Two workers of one user starting together end up with the same key: the file is created
    exclusively, and the loser of the race reads the winner's.

    Raises:
        KeyFileError: the key file is readable by group or others, not ours, or unusable.
        CryptoError: the file does not hold an unencrypted RSA private key.
    """
    _ensure_private_dir(key_dir)
    path = key_dir / USER_KEY_FILENAME
    if not path.exists():
        created = make_key(bits)
        if _create_private(path, created.private_pem()):
            return created
    return UserKey.from_pem(_read_private(path))


def _os_call(func: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
    """``func(*args, **kwargs)`` with OSError translated to KeyFileError."""
    try:
        return func(*args, **kwargs)
    except OSError as exc:
        raise KeyFileError(f"{func.__name__} failed: {exc}") from exc


def _ensure_private_dir(directory: Path) -> None:
    _os_call(directory.mkdir, mode=0o700, parents=True, exist_ok=True)
    if stat.S_IMODE(_os_call(os.stat, directory).st_mode) != 0o700:
        _os_call(os.chmod, directory, 0o700)


def _age(path: Path, now: float) -> float | None:
    try:
        return now - path.stat().st_mtime
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise KeyFileError(f"cannot stat {path}: {exc}") from exc


def _mtime(path: Path) -> float:
    return _os_call(os.stat, path).st_mtime


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise KeyFileError(f"cannot delete {path}: {exc}") from exc


def _read_private(path: Path) -> bytes:
    """The content of a key file, refusing links, foreign owners and group/other access."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise KeyFileError(f"cannot open key file {path} (symlinks are refused): {exc}") from exc
    try:
        with os.fdopen(fd, "rb") as handle:
            _check_private(path, os.fstat(handle.fileno()))
            return handle.read()
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc}") from exc


def _check_private(path: Path, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise KeyFileError(f"key file {path} is not a regular file")
    if info.st_uid != os.geteuid():
        raise KeyFileError(f"key file {path} belongs to uid {info.st_uid}, not to this user")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise KeyFileError(
            f"key file {path} has mode {mode:04o}: group or others can access it; "
            "refusing to use it (chmod 600 it, or delete it to get a new key)"
        )
    if info.st_size > _MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"key file {path} is {info.st_size} bytes, too big for a key")


def _temp_with(directory: Path, name: str, data: bytes) -> str:
    """A synced 0600 temp file holding ``data`` next to its final name."""
    fd, temp = _os_call(tempfile.mkstemp, dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        _remove(Path(temp))
        raise KeyFileError(f"cannot write {temp}: {exc}") from exc
    return temp


def _write_private(path: Path, data: bytes, mtime: float) -> None:
    """Atomically replace ``path`` with ``data`` (mode 0600) and set its mtime."""
    temp = _temp_with(path.parent, path.name, data)
    try:
        _os_call(os.utime, temp, (mtime, mtime))
        _os_call(os.replace, temp, path)
    finally:
        _remove(Path(temp))
    _sync_dir(path.parent)


def _create_private(path: Path, data: bytes) -> bool:
    """Atomically create ``path`` with ``data`` (mode 0600); False if it already exists."""
    temp = _temp_with(path.parent, path.name, data)
    try:
        os.link(temp, path)
    except FileExistsError:
        return False
    except OSError as exc:
        raise KeyFileError(f"cannot create key file {path}: {exc}") from exc
    finally:
        _remove(Path(temp))
    _sync_dir(path.parent)
    return True


def _sync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable."""
    fd = _os_call(os.open, directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
