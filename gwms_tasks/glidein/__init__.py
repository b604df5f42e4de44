"""The files a glidein runs: glidein_startup.sh and the scripts it downloads from the staging area.

This package holds them as package data. :data:`BUILTIN_FILES` says which of them the staging
builder stages and how (list, type, ``config_out`` key); ``glidein_startup.sh`` itself is not
staged: the grid backend transfers it as the job's executable (:func:`startup_script`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gwms_tasks.core.staging import DEFAULT_LAST_SCRIPT, FileListKey, FileType

STARTUP_SCRIPT = "glidein_startup.sh"


@dataclass(frozen=True, slots=True)
class BuiltinFile:
    """One file of this package that goes in the main staging area.

    Attributes:
        name: file name in this package and on the glidein.
        file_type: how the glidein processes it.
        list_key: the main list it goes in.
        config_out: glidein_config key that receives its path, or ``FALSE``.
        source: where the content comes from, relative to the ``gwms_tasks`` package; by
            default ``glidein/<name>``. The condor payload imports a few core modules, which
            are staged under flat names from here.
    """

    name: str
    file_type: FileType = FileType.REGULAR
    list_key: FileListKey = FileListKey.FILE_LIST
    config_out: str = "FALSE"
    source: str | None = None

    @property
    def source_path(self) -> str:
        """The source relative to the ``gwms_tasks`` package."""
        return self.source if self.source is not None else f"glidein/{self.name}"


# In list order. Validation scripts go in the after list, so that entry constants and the
# frontend's files are in glidein_config when they run; payloads are plain files that the last
# script (payload_startup.sh) starts, with the modules the condor payload's renderer imports.
BUILTIN_FILES: tuple[BuiltinFile, ...] = (
    BuiltinFile("error_gen.sh", config_out="ERROR_GEN_PATH"),
    BuiltinFile(DEFAULT_LAST_SCRIPT),
    BuiltinFile("payload_condor.sh"),
    BuiltinFile("payload_celery.sh"),
    BuiltinFile("payload_celery.py"),
    BuiltinFile("payload_condor_config.py"),
    BuiltinFile("gwms_errors.py", source="errors.py"),
    BuiltinFile("gwms_lifetime.py", source="core/lifetime.py"),
    BuiltinFile("gwms_condor_config.py", source="core/condor_config.py"),
    BuiltinFile("validate_workdir.sh", FileType.EXEC, FileListKey.AFTER_FILE_LIST),
    BuiltinFile("validate_disk.sh", FileType.EXEC, FileListKey.AFTER_FILE_LIST),
    BuiltinFile("validate_commands.sh", FileType.EXEC, FileListKey.AFTER_FILE_LIST),
)


def package_dir() -> Path:
    """The ``gwms_tasks`` package directory, the root of :attr:`BuiltinFile.source_path`."""
    return Path(__file__).resolve().parent.parent


def glidein_dir() -> Path:
    """The directory holding the glidein scripts of this package."""
    return Path(__file__).resolve().parent


def startup_script() -> Path:
    """Path of glidein_startup.sh, the executable of every glidein job."""
    return glidein_dir() / STARTUP_SCRIPT
