"""Private key files on disk: the factory's ``rsa.key`` with its rotation, and a user worker's key.

The factory key rotation follows the reference §2.1: at startup a key younger than the grace
period is reused; an older one is moved to ``rsa.key.bak`` and a new ``rsa.key`` written. The
mtime of ``rsa.key`` is the time it became current, so the old key stays valid until that mtime
plus the grace period, across restarts within the window; after it, ``rsa.key.bak`` is deleted.

Every key file is written atomically with mode 0600 in a 0700 directory (by
:mod:`gwms_tasks.private_files`, as credentials are), and is only read when it is a regular file
of ours that group and others cannot read.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from gwms_tasks.core.crypto import FactoryKey
from gwms_tasks.core.envelope import UserKey
from gwms_tasks.core.keyring import DEFAULT_GRACE_SECONDS, Keyring, StartupAction, startup_decision
from gwms_tasks.private_files import (
    PrivateFileError,
    create_private,
    ensure_private_dir,
    os_call,
    remove_file,
    write_private,
)

FACTORY_KEY_FILENAME = "rsa.key"
OLD_FACTORY_KEY_FILENAME = "rsa.key.bak"
USER_KEY_FILENAME = "worker_key.pem"
_MAX_KEY_FILE_BYTES = 64 * 1024  # a 16384-bit PEM key is under 13 KiB

KeyFileError = PrivateFileError
"""A key file or directory is unsafe, unreadable or unwritable (key files are private files,
written by :mod:`gwms_tasks.private_files`, so both raise the one error)."""


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
    ensure_private_dir(work_dir)
    key_path = work_dir / FACTORY_KEY_FILENAME
    old_path = work_dir / OLD_FACTORY_KEY_FILENAME
    action = startup_decision(_age(key_path, now), grace)
    if action is StartupAction.ROTATE:
        FactoryKey.from_pem(_read_private(key_path))  # never rotate a key we could not use
        os_call(os.replace, key_path, old_path)
    if action is not StartupAction.REUSE:
        write_private(key_path, make_key(bits).to_pem(), mtime=now)
    if now >= _mtime(key_path) + grace:
        remove_file(old_path)  # its window is over: not even read
    return load_factory_keyring(work_dir, grace)


def retire_expired_factory_key(work_dir: Path, keyring: Keyring, now: float) -> Keyring:
    """Drop the old key once its grace window is over, deleting ``rsa.key.bak`` with it."""
    trimmed = keyring.drop_expired(now)
    if trimmed is not keyring:
        remove_file(work_dir / OLD_FACTORY_KEY_FILENAME)
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
    ensure_private_dir(key_dir)
    path = key_dir / USER_KEY_FILENAME
    if not path.exists():
        created = make_key(bits)
        if create_private(path, created.private_pem()):
            return created
    return UserKey.from_pem(_read_private(path))


def _age(path: Path, now: float) -> float | None:
    try:
        return now - path.stat().st_mtime
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise KeyFileError(f"cannot stat {path}: {exc}") from exc


def _mtime(path: Path) -> float:
    return os_call(os.stat, path).st_mtime


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


def load_factory_keyring(work_dir: Path, grace: float = DEFAULT_GRACE_SECONDS) -> Keyring:
    """The factory keyring as the files are now, never generating or rotating anything.

    For every process but the one that starts the factory (pool processes, several factory
    workers): :func:`load_or_create_factory_keyring` runs once at factory start; the others
    only read what it wrote. The old key is kept while ``rsa.key``'s mtime + ``grace`` lies
    ahead (the caller drops it when the time comes with ``Keyring.drop_expired``).

    Raises:
        KeyFileError: no ``rsa.key`` yet (start the factory worker first), or an unsafe file.
        CryptoError: a key file does not hold an RSA key encrypted with the default passphrase.
    """
    key_path = work_dir / FACTORY_KEY_FILENAME
    old_path = work_dir / OLD_FACTORY_KEY_FILENAME
    if not key_path.exists():
        raise KeyFileError(
            f"no factory key at {key_path}: `gwms worker factory` creates it at its first start"
        )
    current = FactoryKey.from_pem(_read_private(key_path))
    if not old_path.exists():
        return Keyring(current)
    valid_until = _mtime(key_path) + grace
    return Keyring(current, FactoryKey.from_pem(_read_private(old_path)), valid_until)
