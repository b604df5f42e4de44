"""Write the factory staging area to disk (``gwms staging build``).

The pure core (:mod:`gwms_tasks.core.staging`) decides the content; this service puts it in the
stage dir so that a glidein never sees a half-written area:

1. every file is written atomically (:func:`~gwms_tasks.private_files.atomic_write`: a hidden
   fsynced temp file renamed into place): versioned files have new names, so nothing
   references them yet, and an unchanged file is left alone;
2. the ``signatures.<sign type>`` index, the only file the factory reads to pick ``-sign`` and
   ``-descript`` values, is written last.

The frontend publishes its own staging area with :func:`publish_files` too.

Files of older builds stay until they have been unreferenced for ``keep_old_seconds`` (default:
longer than a glidein may wait in a queue), because a glidein submitted before the rebuild
downloads the descriptions it was given at submit time. A small hidden state file remembers
since when each file has been unreferenced. A lock file serialises concurrent builds.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from gwms_tasks.core.config import FactoryConfig
from gwms_tasks.core.config_parts import StagingFile
from gwms_tasks.core.staging import (
    EntrySpec,
    FileListKey,
    FileType,
    StagedFile,
    StagingIndex,
    StagingSpec,
    build_staging_area,
)
from gwms_tasks.errors import ConfigError, PermanentError
from gwms_tasks.glidein import BUILTIN_FILES, BuiltinFile, package_dir
from gwms_tasks.private_files import PrivateFileError, atomic_write

DEFAULT_KEEP_OLD_SECONDS = 8 * 24 * 3600.0
STATE_FILE = ".staging-state.json"
LOCK_FILE = ".staging.lock"
_BUILD_PREFIX = ".build-"
_CONFIG_SOURCE = "factory config (staging files)"


def load_builtin_files(
    builtins: Sequence[BuiltinFile] = BUILTIN_FILES, root: Path | None = None
) -> tuple[StagedFile, ...]:
    """Read the built-in glidein files named by ``builtins`` into staged-file records.

    Args:
        builtins: which files, in list order, and how they are staged.
        root: the directory their ``source_path`` is relative to; the ``gwms_tasks`` package
            by default.

    Raises:
        ConfigError: a named file does not exist or cannot be read.
    """
    base = root if root is not None else package_dir()
    staged = []
    problems = []
    for builtin in builtins:
        path = base / builtin.source_path
        try:
            content = path.read_bytes()
        except OSError as exc:
            problems.append(f"{builtin.name}: cannot read {path}: {exc.strerror}")
            continue
        staged.append(
            StagedFile(
                name=builtin.name,
                content=content,
                file_type=builtin.file_type,
                list_key=builtin.list_key,
                config_out=builtin.config_out,
            )
        )
    if problems:
        raise ConfigError("built-in glidein files", problems)
    return tuple(staged)


def staging_spec_from_config(
    config: FactoryConfig,
    *,
    base_dir: Path | None = None,
    builtin_files: tuple[StagedFile, ...] | None = None,
) -> StagingSpec:
    """The staging spec of a factory config: built-in files, operator files, entry constants.

    Global operator files go in the main lists (``exec`` ones in the after list, so that they
    see entry constants and the frontend's files, like the built-in checks); entry files in the
    entry's list. Entry constants are the attributes the config marks ``const``.

    Args:
        config: the validated factory config.
        base_dir: what relative operator file paths are relative to (the config file's
            directory, typically); the current directory by default.
        builtin_files: the built-in files; :func:`load_builtin_files` by default.

    Raises:
        ConfigError: an operator file cannot be read, or the result is inconsistent.
    """
    base = base_dir if base_dir is not None else Path.cwd()
    problems: list[str] = []
    files = tuple(
        _operator_file(item, base, f"files[{i}]", problems, main=True)
        for i, item in enumerate(config.files)
    )
    entries = []
    for name, entry in config.entries.items():
        entry_files = tuple(
            _operator_file(item, base, f"entries.{name}.files[{i}]", problems, main=False)
            for i, item in enumerate(entry.files)
        )
        constants = {key: str(value) for key, value in entry.const_attributes().items()}
        entries.append(EntrySpec(name, constants=constants, files=entry_files))
    if problems:
        raise ConfigError(_CONFIG_SOURCE, problems)
    builtins = builtin_files if builtin_files is not None else load_builtin_files()
    spec = StagingSpec(builtin_files=builtins, entries=tuple(entries), files=files)
    build_staging_area(spec)  # validates now, so errors name the config rather than a build
    return spec


def _operator_file(
    item: StagingFile, base: Path, where: str, problems: list[str], *, main: bool
) -> StagedFile:
    path = base / Path(item.path)
    try:
        content = path.read_bytes()
    except OSError as exc:
        problems.append(f"{where}.path: cannot read {path}: {exc.strerror}")
        content = b""
    try:
        file_type = FileType(item.type.value)
    except ValueError:
        problems.append(f"{where}.type: glidein_startup.sh does not handle {item.type.value!r}")
        file_type = FileType.REGULAR
    after = main and file_type is FileType.EXEC
    return StagedFile(
        name=item.name,
        content=content,
        file_type=file_type,
        list_key=FileListKey.AFTER_FILE_LIST if after else FileListKey.FILE_LIST,
        cond_download=item.cond_download,
        config_out=item.config_out,
        untar_dir=item.untar_dir,
        period=item.period,
        prefix=item.prefix,
    )


def build_staging(
    spec: StagingSpec,
    stage_dir: Path,
    *,
    keep_old_seconds: float = DEFAULT_KEEP_OLD_SECONDS,
    now: float | None = None,
) -> StagingIndex:
    """Build the staging area of ``spec`` into ``stage_dir`` and return its index.

    Args:
        spec: what to stage.
        stage_dir: the directory the web server serves; created if missing.
        keep_old_seconds: how long files no longer referenced are kept.
        now: the current time (epoch seconds); the clock by default.

    Returns:
        The index (main and entry description names and signature hashes).

    Raises:
        ConfigError: the spec is inconsistent.
        PermanentError: the stage dir cannot be written.
    """
    area = build_staging_area(spec)
    clock = time.time() if now is None else now
    try:
        stage_dir.mkdir(parents=True, exist_ok=True)
        with _locked(stage_dir):
            _publish(stage_dir, area.files, area.index.file_name)
            _prune(stage_dir, set(area.files), clock, keep_old_seconds)
    except (OSError, PrivateFileError) as exc:
        raise PermanentError(f"cannot write the staging area {stage_dir}: {exc}") from exc
    return area.index


def publish_files(stage_dir: Path, files: Mapping[str, bytes], last: str | None = None) -> int:
    """Write ``files`` (relative path -> content) into ``stage_dir``, ``last`` after the others.

    Each file is replaced atomically, an unchanged one is left alone, and concurrent
    publishers of one stage dir take turns (the build lock). Nothing is pruned.

    Returns:
        How many files were (re)written.

    Raises:
        PermanentError: the stage dir cannot be written.
    """
    try:
        stage_dir.mkdir(parents=True, exist_ok=True)
        with _locked(stage_dir):
            return _publish(stage_dir, files, last)
    except (OSError, PrivateFileError) as exc:
        raise PermanentError(f"cannot write the staging area {stage_dir}: {exc}") from exc


@contextmanager
def _locked(stage_dir: Path) -> Iterator[None]:
    with (stage_dir / LOCK_FILE).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _publish(stage_dir: Path, files: Mapping[str, bytes], last: str | None) -> int:
    """Write each changed file atomically in place, ``last`` (the index) after the others."""
    for leftover in [*stage_dir.glob(f"{_BUILD_PREFIX}*"), *stage_dir.rglob(".*.tmp")]:
        # Under the lock, these can only be remains of a killed build: its temp files, or the
        # build dir of a version that staged everything in one before renaming.
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
    written = 0
    for relative in sorted(files, key=lambda name: name == last):
        target = stage_dir / relative
        if relative != last and _same_content(target, files[relative]):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.parent.chmod(0o755)
        atomic_write(target, files[relative], 0o644)
        written += 1
    return written


def _same_content(path: Path, content: bytes) -> bool:
    try:
        return path.is_file() and path.read_bytes() == content
    except OSError:
        return False


def _prune(stage_dir: Path, referenced: set[str], now: float, keep_old_seconds: float) -> None:
    """Drop files unreferenced for longer than the grace time; remember since when the rest are."""
    state_path = stage_dir / STATE_FILE
    unreferenced_since = _read_state(state_path)
    kept: dict[str, float] = {}
    for relative in _served_files(stage_dir):
        if relative in referenced:
            continue
        since = unreferenced_since.get(relative, now)
        if now - since > keep_old_seconds:
            (stage_dir / relative).unlink(missing_ok=True)
        else:
            kept[relative] = since
    for directory in sorted((p for p in stage_dir.iterdir() if p.is_dir()), reverse=True):
        if not directory.name.startswith(".") and not any(directory.iterdir()):
            directory.rmdir()
    atomic_write(state_path, json.dumps(kept, sort_keys=True, indent=0).encode(), 0o644)


def _read_state(path: Path) -> dict[str, float]:
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(raw, dict):
        return {}
    return {str(k): float(v) for k, v in raw.items() if isinstance(v, int | float)}


def _served_files(stage_dir: Path) -> Iterator[str]:
    """Relative paths of the visible regular files (hidden build dirs and state excluded)."""
    for root, dirs, names in os.walk(stage_dir):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            if not name.startswith("."):
                yield str((Path(root) / name).relative_to(stage_dir))
