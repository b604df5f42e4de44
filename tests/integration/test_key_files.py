"""Key files on a real file system: factory key rotation by mtime, user keys, permissions."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gwms_tasks.adapters.key_files import (
    FACTORY_KEY_FILENAME,
    OLD_FACTORY_KEY_FILENAME,
    USER_KEY_FILENAME,
    KeyFileError,
    load_or_create_factory_keyring,
    load_or_create_user_key,
    retire_expired_factory_key,
)
from gwms_tasks.core.crypto import CryptoError, FactoryKey
from gwms_tasks.core.envelope import UserKey
from gwms_tasks.core.keyring import Keyring
from gwms_tasks.errors import PermanentError

NOW = 1_700_000_000.0
GRACE = 900.0

FactoryMaker = Callable[[int], FactoryKey]


@pytest.fixture(scope="module")
def factory_pool() -> list[FactoryKey]:
    """Keys made once for the module: 2048-bit generation is the slow part."""
    return [FactoryKey.generate() for _ in range(3)]


@pytest.fixture(scope="module")
def user_pool() -> list[UserKey]:
    return [UserKey.generate() for _ in range(2)]


@pytest.fixture
def make_factory_key(factory_pool: list[FactoryKey]) -> Iterator[FactoryMaker]:
    """Hands out the pooled keys in order, each at most once per test."""
    keys = iter(factory_pool)

    def make(bits: int) -> FactoryKey:
        assert bits == 2048
        return next(keys)

    yield make


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    return tmp_path / "factory"


def start(work_dir: Path, now: float, make: FactoryMaker, grace: float = GRACE) -> Keyring:
    return load_or_create_factory_keyring(work_dir, now, grace=grace, make_key=make)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def age_key(work_dir: Path, seconds: float) -> None:
    """Pretend rsa.key was written ``seconds`` before NOW."""
    os.utime(work_dir / FACTORY_KEY_FILENAME, (NOW - seconds, NOW - seconds))


def no_litter(directory: Path) -> bool:
    return not any(name.name.endswith(".tmp") for name in directory.iterdir())


def test_first_start_writes_a_private_encrypted_key(
    work_dir: Path, make_factory_key: FactoryMaker, factory_pool: list[FactoryKey]
) -> None:
    ring = start(work_dir, NOW, make_factory_key)
    key_file = work_dir / FACTORY_KEY_FILENAME
    assert ring == Keyring(factory_pool[0])
    assert mode_of(work_dir) == 0o700
    assert mode_of(key_file) == 0o600
    assert key_file.stat().st_mtime == NOW
    assert b"DEK-Info: AES-256-CBC" in key_file.read_bytes()
    assert FactoryKey.from_pem(key_file.read_bytes()) == factory_pool[0]
    assert not (work_dir / OLD_FACTORY_KEY_FILENAME).exists()
    assert no_litter(work_dir)


def test_restart_within_the_grace_reuses_the_key(
    work_dir: Path, make_factory_key: FactoryMaker, factory_pool: list[FactoryKey]
) -> None:
    start(work_dir, NOW, make_factory_key)
    ring = start(work_dir, NOW + GRACE, make_factory_key)
    assert ring == Keyring(factory_pool[0])
    assert (work_dir / FACTORY_KEY_FILENAME).stat().st_mtime == NOW


def test_restart_with_an_old_key_rotates_and_keeps_it_for_the_grace(
    work_dir: Path, make_factory_key: FactoryMaker, factory_pool: list[FactoryKey]
) -> None:
    start(work_dir, NOW, make_factory_key)
    age_key(work_dir, 5000)
    ring = start(work_dir, NOW, make_factory_key)
    assert ring == Keyring(factory_pool[1], factory_pool[0], NOW + GRACE)
    backup = work_dir / OLD_FACTORY_KEY_FILENAME
    assert FactoryKey.from_pem(backup.read_bytes()) == factory_pool[0]
    assert mode_of(backup) == 0o600
    assert (work_dir / FACTORY_KEY_FILENAME).stat().st_mtime == NOW
    assert no_litter(work_dir)


def test_restart_inside_the_window_after_a_rotation_keeps_the_same_deadline(
    work_dir: Path, make_factory_key: FactoryMaker, factory_pool: list[FactoryKey]
) -> None:
    start(work_dir, NOW, make_factory_key)
    age_key(work_dir, 5000)
    start(work_dir, NOW, make_factory_key)
    ring = start(work_dir, NOW + 300, make_factory_key)
    assert ring == Keyring(factory_pool[1], factory_pool[0], NOW + GRACE)


def test_restart_exactly_at_the_end_of_the_window_drops_the_backup(
    work_dir: Path, make_factory_key: FactoryMaker, factory_pool: list[FactoryKey]
) -> None:
    start(work_dir, NOW, make_factory_key)
    age_key(work_dir, 5000)
    start(work_dir, NOW, make_factory_key)
    ring = start(work_dir, NOW + GRACE, make_factory_key)
    assert ring == Keyring(factory_pool[1])
    assert not (work_dir / OLD_FACTORY_KEY_FILENAME).exists()


def test_running_factory_retires_the_old_key_after_the_grace(
    work_dir: Path, make_factory_key: FactoryMaker, factory_pool: list[FactoryKey]
) -> None:
    start(work_dir, NOW, make_factory_key)
    age_key(work_dir, 5000)
    ring = start(work_dir, NOW, make_factory_key)
    backup = work_dir / OLD_FACTORY_KEY_FILENAME
    assert retire_expired_factory_key(work_dir, ring, NOW + GRACE - 1) is ring
    assert backup.exists()
    assert retire_expired_factory_key(work_dir, ring, NOW + GRACE) == Keyring(factory_pool[1])
    assert not backup.exists()


def test_start_after_a_crash_mid_rotation_keeps_the_moved_key(
    work_dir: Path, make_factory_key: FactoryMaker, factory_pool: list[FactoryKey]
) -> None:
    start(work_dir, NOW - 5000, make_factory_key)
    (work_dir / FACTORY_KEY_FILENAME).rename(work_dir / OLD_FACTORY_KEY_FILENAME)
    ring = start(work_dir, NOW, make_factory_key)
    assert ring == Keyring(factory_pool[1], factory_pool[0], NOW + GRACE)


def test_group_readable_factory_key_is_refused_and_left_alone(
    work_dir: Path, make_factory_key: FactoryMaker
) -> None:
    start(work_dir, NOW, make_factory_key)
    key_file = work_dir / FACTORY_KEY_FILENAME
    key_file.chmod(0o640)
    before = key_file.read_bytes()
    for now in (NOW + 1, NOW + 5000):  # reuse and rotation both refuse
        with pytest.raises(KeyFileError, match="0640"):
            start(work_dir, now, make_factory_key)
    assert key_file.read_bytes() == before
    assert not (work_dir / OLD_FACTORY_KEY_FILENAME).exists()


def test_corrupt_factory_key_is_reported_not_rotated_away(
    work_dir: Path, make_factory_key: FactoryMaker
) -> None:
    start(work_dir, NOW - 5000, make_factory_key)
    key_file = work_dir / FACTORY_KEY_FILENAME
    key_file.write_bytes(b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n")
    age_key(work_dir, 5000)
    with pytest.raises(CryptoError, match="cannot load"):
        start(work_dir, NOW, make_factory_key)
    assert key_file.exists()
    assert not (work_dir / OLD_FACTORY_KEY_FILENAME).exists()


def test_symlinked_factory_key_is_refused(
    work_dir: Path, tmp_path: Path, make_factory_key: FactoryMaker
) -> None:
    start(work_dir, NOW, make_factory_key)
    elsewhere = tmp_path / "elsewhere.key"
    (work_dir / FACTORY_KEY_FILENAME).rename(elsewhere)
    (work_dir / FACTORY_KEY_FILENAME).symlink_to(elsewhere)
    with pytest.raises(KeyFileError, match="symlink"):
        start(work_dir, NOW + 1, make_factory_key)


def test_existing_open_work_dir_is_made_private(
    work_dir: Path, make_factory_key: FactoryMaker
) -> None:
    work_dir.mkdir(mode=0o755)
    work_dir.chmod(0o755)
    start(work_dir, NOW, make_factory_key)
    assert mode_of(work_dir) == 0o700


def test_key_file_path_under_a_regular_file_is_a_clear_error(
    tmp_path: Path, make_factory_key: FactoryMaker
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(KeyFileError, match="mkdir"):
        start(blocker / "factory", NOW, make_factory_key)


# --- the user worker's key ---------------------------------------------------------------------


def test_user_key_is_created_once_and_reused(tmp_path: Path, user_pool: list[UserKey]) -> None:
    key_dir = tmp_path / "user_alice" / "keys"
    made = load_or_create_user_key(key_dir, make_key=lambda bits: user_pool[0])
    key_file = key_dir / USER_KEY_FILENAME
    assert made is user_pool[0]
    assert mode_of(key_dir) == 0o700
    assert mode_of(key_file) == 0o600
    assert key_file.read_bytes() == user_pool[0].private_pem()

    def must_not_generate(bits: int) -> UserKey:
        raise AssertionError("an existing key must be reused")

    again = load_or_create_user_key(key_dir, make_key=must_not_generate)
    assert again.public_pem == user_pool[0].public_pem
    assert no_litter(key_dir)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_user_key_readable_by_others_is_refused(
    tmp_path: Path, user_pool: list[UserKey], mode: int
) -> None:
    load_or_create_user_key(tmp_path, make_key=lambda bits: user_pool[0])
    (tmp_path / USER_KEY_FILENAME).chmod(mode)
    with pytest.raises(PermanentError, match=f"{mode:04o}"):
        load_or_create_user_key(tmp_path, make_key=lambda bits: user_pool[1])
    assert (tmp_path / USER_KEY_FILENAME).read_bytes() == user_pool[0].private_pem()


def test_user_key_lost_race_uses_the_winners_key(tmp_path: Path, user_pool: list[UserKey]) -> None:
    def other_worker_wins(bits: int) -> UserKey:
        # Another worker of the same user writes its key while this one is generating.
        winner = tmp_path / USER_KEY_FILENAME
        winner.write_bytes(user_pool[1].private_pem())
        winner.chmod(0o600)
        return user_pool[0]

    key = load_or_create_user_key(tmp_path, make_key=other_worker_wins)
    assert key.public_pem == user_pool[1].public_pem
    assert (tmp_path / USER_KEY_FILENAME).read_bytes() == user_pool[1].private_pem()
    assert no_litter(tmp_path)


def test_corrupt_user_key_is_a_clear_error(tmp_path: Path) -> None:
    key_file = tmp_path / USER_KEY_FILENAME
    key_file.write_bytes(b"garbage")
    key_file.chmod(0o600)
    with pytest.raises(CryptoError, match="cannot load"):
        load_or_create_user_key(tmp_path)


def test_user_key_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / USER_KEY_FILENAME).mkdir(mode=0o700)
    with pytest.raises(KeyFileError):
        load_or_create_user_key(tmp_path)


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
def test_user_key_owned_by_another_user_is_refused(
    tmp_path: Path, user_pool: list[UserKey]
) -> None:
    load_or_create_user_key(tmp_path, make_key=lambda bits: user_pool[0])
    os.chown(tmp_path / USER_KEY_FILENAME, 65534, 65534)
    with pytest.raises(KeyFileError, match="uid 65534"):
        load_or_create_user_key(tmp_path, make_key=lambda bits: user_pool[1])
