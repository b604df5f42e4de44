"""The frontend's file edge: its config file, its credential files, its staging area on disk.

The core parses text and builds content; this is the one place of the frontend that opens
files, so read failures become the same clear errors (or notes) as bad content.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from gwms_tasks.config_file import read_config_text
from gwms_tasks.errors import PermanentError
from gwms_tasks.frontend.core_ads import CredentialFile
from gwms_tasks.frontend.core_config import FrontendConfig, GroupConfig, load_frontend_config
from gwms_tasks.frontend.core_staging import FrontendStaging
from gwms_tasks.services.staging_build import publish_files

MAX_CREDENTIAL_BYTES = 1 << 20  # a token or proxy is a few kB; anything this big is a mistake


def read_frontend_config(path: Path) -> FrontendConfig:
    """Read and validate the frontend config at ``path``.

    Raises:
        ConfigError: the file cannot be read, or its content is invalid.
    """
    return load_frontend_config(read_config_text(path), str(path))


def resolve(path: PurePosixPath, base_dir: Path) -> Path:
    """A configured path: absolute as given, relative to the config file's directory otherwise."""
    return base_dir / Path(path) if not path.is_absolute() else Path(path)


def read_credentials(
    group: GroupConfig, base_dir: Path
) -> tuple[tuple[CredentialFile, ...], tuple[str, ...]]:
    """The group's credentials that can be read, and a note for each one that cannot.

    A credential that cannot be read is left out (its entries may then get no request); the
    note names the file and why, never any content.
    """
    readable: list[CredentialFile] = []
    notes: list[str] = []
    for credential in group.credentials:
        path = resolve(credential.path, base_dir)
        try:
            data = path.read_bytes()
            if len(data) > MAX_CREDENTIAL_BYTES:
                raise PermanentError(f"larger than {MAX_CREDENTIAL_BYTES} bytes")
            content = data.decode("utf-8")
            if not content.strip():
                raise PermanentError("empty")
        except (OSError, UnicodeDecodeError, PermanentError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            notes.append(f"credential {credential.id} ({path}) not used: {reason}")
            continue
        readable.append(
            CredentialFile(credential.id, credential.type, credential.security_class, content)
        )
    return tuple(readable), tuple(notes)


def write_staging(stage_dir: Path, staging: FrontendStaging) -> int:
    """Put the staging area's files in ``stage_dir``; return how many were (re)written.

    Names are content-hashed, so a file already there with the same content is left alone;
    each new file is written atomically (as the factory's staging area is), so the web server
    never serves half a file.

    Raises:
        PermanentError: the stage dir cannot be written.
    """
    return publish_files(stage_dir, staging.files)
