"""The one error tree of the project.

Adapters translate library errors into these with ``raise ... from exc``; only task, CLI and
web boundaries catch broadly.
"""

from __future__ import annotations


class GwmsError(Exception):
    """Base of every error this project raises on purpose."""


class TransientError(GwmsError):
    """Worth retrying: a service was unreachable, a lock was busy, a query timed out."""


class PermanentError(GwmsError):
    """Retrying will not help: the input or the remote side said no for good."""


class ConfigError(GwmsError):
    """A configuration file is wrong.

    Attributes:
        source: the file (or other source) the configuration came from.
        problems: one line per problem, each naming the key path and what was expected.
    """

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = list(problems)
        joined = "\n".join(f"  {source}: {p}" for p in self.problems)
        super().__init__(f"invalid configuration in {source}:\n{joined}")
