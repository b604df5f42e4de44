"""Becoming a local user for good, and private directories, with real Unix users (as root).

Each check that drops privileges runs in a forked child, so the test process stays root.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gwms_tasks.errors import PermanentError
from gwms_tasks.private_files import ensure_private_dir
from gwms_tasks.privileges import drop_to_user, lookup_user
from tests.integration.celery_app_probe import can_create_users, run_in_child, temporary_users

needs_root = pytest.mark.skipif(not can_create_users(), reason="needs root with useradd")


@pytest.fixture
def two_users() -> Iterator[tuple[str, str]]:
    with temporary_users(2) as (user_a, user_b):
        yield user_a, user_b


def _attempt(action: Any) -> str:
    """'ok' if ``action()`` succeeds, else the errno name / exception class it raised."""
    try:
        action()
    except PermissionError:
        return "PermissionError"
    except OSError as exc:
        return type(exc).__name__
    return "ok"


@needs_root
@pytest.mark.root
def test_dropped_child_cannot_read_other_users_private_file_or_regain_root(
    two_users: tuple[str, str], tmp_path: Path
) -> None:
    user_a, user_b = two_users
    tmp_path.chmod(0o755)
    secret = tmp_path / "credential"
    secret.write_text("B's token")
    owner_b = lookup_user(user_b)
    os.chown(secret, owner_b.uid, owner_b.gid)
    secret.chmod(0o600)

    def as_a() -> dict[str, Any]:
        user = drop_to_user(user_a)
        return {
            "ids": [os.getresuid(), os.getresgid()],
            "groups": os.getgroups(),
            "env": [os.environ["HOME"], os.environ["USER"], os.environ["LOGNAME"]],
            "umask": os.umask(0o077),
            "read_b": _attempt(secret.read_text),
            "setuid_root": _attempt(lambda: os.setuid(0)),
            "seteuid_root": _attempt(lambda: os.seteuid(0)),
            "setgid_root": _attempt(lambda: os.setgid(0)),
            "uid": user.uid,
        }

    result = run_in_child(as_a)

    a = lookup_user(user_a)
    assert result["ids"] == [[a.uid] * 3, [a.gid] * 3]
    assert result["groups"] == [a.gid]
    assert result["env"] == [a.home, user_a, user_a]
    assert result["umask"] == 0o077
    assert result["read_b"] == "PermissionError"
    assert result["setuid_root"] == "PermissionError"
    assert result["seteuid_root"] == "PermissionError"
    assert result["setgid_root"] == "PermissionError"


@needs_root
@pytest.mark.root
def test_worker_running_as_one_user_refuses_to_become_another(
    two_users: tuple[str, str],
) -> None:
    user_a, user_b = two_users

    def as_a() -> dict[str, Any]:
        drop_to_user(user_a)
        again = drop_to_user(user_a).name  # already that user: nothing to drop, accepted
        try:
            drop_to_user(user_b)
        except PermanentError as exc:
            return {"again": again, "other": str(exc)}
        return {"again": again, "other": "accepted"}

    result = run_in_child(as_a)

    assert result["again"] == user_a
    assert f"running as {user_a!r}" in result["other"]
    assert f"must be started as root (it then drops to {user_b!r})" in result["other"]


def test_root_is_never_a_target() -> None:
    def become_root() -> dict[str, Any]:
        try:
            drop_to_user("root")
        except PermanentError as exc:
            return {"refused": str(exc)}
        return {"refused": ""}

    assert "never runs as root" in run_in_child(become_root)["refused"]


def test_unknown_user_is_refused_with_its_name() -> None:
    with pytest.raises(PermanentError, match="no local user 'gwmst_nobody_here'"):
        drop_to_user("gwmst_nobody_here")


@needs_root
@pytest.mark.root
def test_private_dir_is_created_0700_and_owned_by_the_user(
    two_users: tuple[str, str], tmp_path: Path
) -> None:
    user_a, _ = two_users
    target = ensure_private_dir(tmp_path / "creds_a", user_a)

    info = target.lstat()
    assert stat.S_ISDIR(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o700
    assert pwd.getpwuid(info.st_uid).pw_name == user_a


@needs_root
@pytest.mark.root
def test_existing_loose_dir_is_tightened_and_handed_to_the_user(
    two_users: tuple[str, str], tmp_path: Path
) -> None:
    user_a, _ = two_users
    loose = tmp_path / "loose"
    loose.mkdir()
    loose.chmod(0o777)

    ensure_private_dir(loose, user_a)

    info = loose.lstat()
    assert stat.S_IMODE(info.st_mode) == 0o700
    assert info.st_uid == lookup_user(user_a).uid


@needs_root
@pytest.mark.root
def test_other_user_cannot_list_a_private_dir(two_users: tuple[str, str], tmp_path: Path) -> None:
    user_a, user_b = two_users
    tmp_path.chmod(0o755)
    private = ensure_private_dir(tmp_path / "creds_b", user_b)

    def as_a() -> dict[str, Any]:
        drop_to_user(user_a)
        return {"list": _attempt(lambda: os.listdir(private))}

    assert run_in_child(as_a) == {"list": "PermissionError"}


@needs_root
@pytest.mark.root
def test_a_worker_refuses_a_dir_of_another_user_as_its_own_private_dir(
    two_users: tuple[str, str], request: pytest.FixtureRequest
) -> None:
    user_a, user_b = two_users
    reachable = Path(tempfile.mkdtemp(prefix="gwms-privtest-"))  # pytest's tmp is root's only
    reachable.chmod(0o755)
    request.addfinalizer(lambda: shutil.rmtree(reachable, ignore_errors=True))
    theirs = ensure_private_dir(reachable / "creds_b", user_b)
    theirs.chmod(0o755)

    def as_a() -> dict[str, Any]:
        drop_to_user(user_a)
        try:
            ensure_private_dir(theirs)  # the current user's, as the credential store asks
        except PermanentError as exc:
            return {"refused": str(exc)}
        return {"refused": ""}

    assert "only root may fix it" in run_in_child(as_a)["refused"]
    assert stat.S_IMODE(theirs.lstat().st_mode) == 0o755


def test_symlink_in_place_of_a_private_dir_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o755)
    link = tmp_path / "creds"
    link.symlink_to(elsewhere)
    me = pwd.getpwuid(os.geteuid()).pw_name

    with pytest.raises(PermanentError, match="is a symlink"):
        ensure_private_dir(link, me)
    assert stat.S_IMODE(elsewhere.stat().st_mode) == 0o755


def test_file_in_place_of_a_private_dir_is_refused(tmp_path: Path) -> None:
    occupied = tmp_path / "creds"
    occupied.write_text("not a directory")
    me = pwd.getpwuid(os.geteuid()).pw_name

    with pytest.raises(PermanentError, match="not a directory"):
        ensure_private_dir(occupied, me)


def test_missing_parent_is_reported(tmp_path: Path) -> None:
    me = pwd.getpwuid(os.geteuid()).pw_name

    with pytest.raises(PermanentError, match="cannot create"):
        ensure_private_dir(tmp_path / "missing" / "creds", me, parents=False)
