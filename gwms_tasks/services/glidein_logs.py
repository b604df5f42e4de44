"""The raw output of completed glideins, kept by the factory for a while.

Layout (glideinWMS's, the reference §6 and §7.4)::

    <client_log_base_dir>/user_<username>/glidein_<glidein>/entry_<entry>/job.<job_id>.out
                                                                          job.<job_id>.err

The factory worker writes them (directories 0750, files 0640), each copy complete or absent
(:func:`~gwms_tasks.private_files.atomic_write`). A kept file's modification time is the
glidein's finish time, so retention counts from when the glidein ended, not from when the
monitor copied it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

from gwms_tasks.errors import PermanentError
from gwms_tasks.private_files import atomic_write

OUTPUT_SUFFIXES: Final = (".out", ".err")
_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
"""A safe path component: no separator, and no leading dot (so never ``..``)."""


def client_log_dir(base: Path, username: str, glidein: str, entry: str) -> Path:
    """``<base>/user_<username>/glidein_<glidein>/entry_<entry>``.

    Raises:
        PermanentError: a name that is not a safe path component.
    """
    for what, name in (("username", username), ("glidein name", glidein), ("entry", entry)):
        _check_part(what, name)
    return base / f"user_{username}" / f"glidein_{glidein}" / f"entry_{entry}"


def keep_logs(
    directory: Path,
    job_id: str,
    outputs: tuple[str | None, str | None],
    finished_at: float,
) -> Path:
    """Copy a glidein's stdout and stderr (paths; None: it has none) into ``directory``.

    Returns:
        The path of the kept ``.out`` file (the ``.err`` file sits next to it).

    Raises:
        PermanentError: the job id is not a safe file name part, or a copy could not be
            written (PrivateFileError; a copy is never left half written).
        OSError: an output or the directory could not be read or made.
    """
    _check_part("job id", job_id)
    directory.mkdir(mode=0o750, parents=True, exist_ok=True)
    kept = directory / f"job.{job_id}.out"
    for source, suffix in zip(outputs, OUTPUT_SUFFIXES, strict=True):
        if source:
            target = directory / f"job.{job_id}{suffix}"
            atomic_write(target, Path(source).read_bytes(), 0o640, mtime=finished_at)
    return kept


def delete_old_logs(base: Path, glidein: str, entry: str, before: float) -> tuple[int, list[str]]:
    """Delete the kept outputs of ``entry`` (every user) last modified before ``before``.

    Returns:
        How many files were deleted, and what could not be deleted (one line each).
    """
    deleted, problems = 0, []
    for path in base.glob(f"user_*/glidein_{glidein}/entry_{entry}/job.*"):
        if path.suffix not in OUTPUT_SUFFIXES:
            continue
        try:
            if path.stat().st_mtime < before:
                path.unlink()
                deleted += 1
        except FileNotFoundError:
            continue  # deleted meanwhile by another monitor pass
        except OSError as exc:
            problems.append(f"cannot delete old glidein output {path}: {exc.strerror or exc}")
    return deleted, problems


def _check_part(what: str, name: str) -> None:
    if not _PART.fullmatch(name):
        raise PermanentError(
            f"{what} {name!r} cannot name a log file or directory "
            "(expected letters, digits, '.', '_' or '-', not starting with '.')"
        )
