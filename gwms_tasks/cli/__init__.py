"""The ``gwms`` command line.

Every module of this package (except ``_``-prefixed ones) is imported here and registers its
commands on :data:`gwms_tasks.cli._root.gwms`.
"""

from __future__ import annotations

import importlib
import pkgutil

from gwms_tasks.cli._root import EXIT_INVALID, gwms

__all__ = ["EXIT_INVALID", "gwms", "main"]

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")


def main() -> None:
    """Entry point of the ``gwms`` script."""
    gwms(prog_name="gwms")
