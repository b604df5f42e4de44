"""Run as one local Unix user, and keep that user's files private.

A user worker serves the frontend security classes mapped to one local user (DESIGN §2): its
credentials, files and grid jobs must be out of reach of every other frontend. Started as
root it becomes that user for good before it consumes anything; started as anyone else it
refuses unless it already *is* that user. Root is never a target. Its private directories are
made by :func:`gwms_tasks.private_files.ensure_private_dir`.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import pkgutil
import pwd
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from gwms_tasks.errors import PermanentError

PRIVATE_UMASK: Final = 0o077
PRIVATE_DIR_MODE: Final = 0o700
ROOT_UID: Final = 0
ROOT_GID: Final = 0


@dataclass(frozen=True, slots=True)
class UnixUser:
    """A local account, as the password database knows it."""

    name: str
    uid: int
    gid: int
    home: str


def lookup_user(username: str) -> UnixUser:
    """The local account ``username``.

    Raises:
        PermanentError: no such local user.
    """
    try:
        entry = pwd.getpwnam(username)
    except KeyError as exc:
        raise PermanentError(f"no local user {username!r} on this machine") from exc
    return UnixUser(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)


def drop_to_user(username: str) -> UnixUser:
    """Become ``username`` for good: groups, gid, uid, environment and a private umask.

    As root: supplementary groups from the group database, then real, effective and saved
    gid and uid, then a check that root cannot be regained. As any other user: allowed only
    when the process already runs as ``username`` (nothing to drop).

    Returns:
        The user the process now runs as.

    Raises:
        PermanentError: unknown user, a root target, the wrong starting user, or a drop that
            did not hold.
    """
    user = lookup_user(username)
    if user.uid == ROOT_UID or user.gid == ROOT_GID:
        raise PermanentError(
            f"refusing to run as {username!r}: a user worker never runs as root or group root"
        )
    if os.geteuid() != ROOT_UID:
        _require_already(user)
    else:
        os.initgroups(user.name, user.gid)
        os.setresgid(user.gid, user.gid, user.gid)
        os.setresuid(user.uid, user.uid, user.uid)
        _verify_dropped(user)
    _set_environment(user)
    os.umask(PRIVATE_UMASK)
    return user


def _require_already(user: UnixUser) -> None:
    uids = os.getresuid()
    if uids != (user.uid, user.uid, user.uid):
        current = user_name(os.geteuid())
        raise PermanentError(
            f"running as {current!r}: a worker for {user.name!r} must be started as root "
            f"(it then drops to {user.name!r}) or as {user.name!r} itself"
        )


def _verify_dropped(user: UnixUser) -> None:
    """Fail unless every id is the user's and root cannot be taken back."""
    if os.getresuid() != (user.uid,) * 3 or os.getresgid() != (user.gid,) * 3:
        raise PermanentError(f"dropping to {user.name!r} did not change every user/group id")
    if ROOT_GID in os.getgroups():
        raise PermanentError(f"user {user.name!r} is in group root; refusing to run as it")
    try:
        os.setuid(ROOT_UID)
    except PermissionError:
        return
    raise PermanentError(f"after dropping to {user.name!r} the process could become root again")


def _set_environment(user: UnixUser) -> None:
    os.environ["HOME"] = user.home
    os.environ["USER"] = user.name
    os.environ["LOGNAME"] = user.name


def user_name(uid: int) -> str:
    """The name of local user ``uid`` (``uid <n>`` when the password database has none)."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


_NOT_PRELOADED = {"test", "tests", "idlelib", "tkinter", "turtle", "turtledemo", "lib2to3"}
_NOT_PRELOADED |= {"ensurepip", "venv", "antigravity", "this", "__main__", "__phello__"}


def python_readable_by_others() -> bool:
    """True when any local user can read this interpreter's standard library."""
    stdlib = Path(os.__file__).resolve().parent
    searchable = all(os.stat(parent).st_mode & 0o001 for parent in stdlib.parents)
    return searchable and os.stat(stdlib).st_mode & 0o005 == 0o005


def preload_stdlib() -> None:
    """Import the standard library now, if users other than root could not read it later.

    On a machine whose Python lives in root's private home (like a pyenv under /root), a
    worker that drops privileges can no longer import the standard library modules it loads
    lazily. A deployment installs Python where its users can read it; a test started as root
    on such a machine imports them up front instead, before the worker drops to its user.
    """
    if python_readable_by_others():
        return
    stdlib = Path(os.__file__).resolve().parent
    places = [str(stdlib), str(stdlib / "lib-dynload")]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        for info in pkgutil.walk_packages(places, onerror=lambda _name: None):
            if _NOT_PRELOADED.isdisjoint(info.name.split(".")):
                with contextlib.suppress(Exception):
                    importlib.import_module(info.name)
