"""Edge helpers: read the config files (factory, frontend, downtimes) from disk.

The core parses text; this is the one place that opens these files, so read failures become
the same :class:`~gwms_tasks.errors.ConfigError` as content failures.
"""

from __future__ import annotations

from pathlib import Path

from gwms_tasks.core.config import FactoryConfig, load_config
from gwms_tasks.core.downtimes import Downtimes, parse_downtimes
from gwms_tasks.errors import ConfigError


def read_config(path: Path) -> FactoryConfig:
    """Read and validate the factory config at ``path``.

    Raises:
        ConfigError: the file cannot be read, or its content is invalid.
    """
    return load_config(read_config_text(path), str(path))


def read_downtimes(path: Path) -> Downtimes:
    """Read the downtimes file at ``path``; a file that does not exist means no downtimes.

    Raises:
        ConfigError: the file exists but cannot be read, or a line is invalid.
    """
    if not path.exists():
        return Downtimes()
    return parse_downtimes(read_config_text(path), str(path))


def read_config_text(path: Path) -> str:
    """The text of the config file at ``path`` (factory, frontend or downtimes).

    Raises:
        ConfigError: the file cannot be read, or is not UTF-8 text.
    """
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), [f"not UTF-8 text (bad byte at offset {exc.start})"]) from exc
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(str(path), [f"cannot read the file: {reason}"]) from exc
