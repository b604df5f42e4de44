"""Read YAML text into plain data, or say clearly, with line and column, why it cannot be read.

The loader is PyYAML's safe loader with two additions: a key given twice in one mapping is an
error (the plain loader silently keeps the last one, hiding a duplicated entry), and a date
that does not exist (``2024-13-45``) is reported at its position instead of as a bare
``ValueError``.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, ScalarNode

from gwms_tasks.core.config_types import show
from gwms_tasks.errors import ConfigError

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _ConfigLoader(yaml.SafeLoader):
    """Safe loader that refuses duplicate keys and reports impossible dates where they are."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        first_line: dict[Hashable, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:  # "<<: *anchor" keys may be overridden on purpose
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                continue  # the base class reports unhashable keys
            if key in first_line:
                raise ConstructorError(
                    None,
                    None,
                    f"duplicate key {show(key)} (first given on line {first_line[key] + 1})",
                    key_node.start_mark,
                )
            first_line[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)

    def construct_timestamp(self, node: ScalarNode) -> object:
        try:
            return self.construct_yaml_timestamp(node)
        except ValueError as exc:
            raise ConstructorError(
                None, None, f"{show(node.value)} is not a valid date: {exc}", node.start_mark
            ) from exc


_ConfigLoader.add_constructor("tag:yaml.org,2002:timestamp", _ConfigLoader.construct_timestamp)


def parse_yaml_mapping(text: str, source: str, expected: tuple[str, ...]) -> dict[Any, Any]:
    """The top-level mapping of a YAML document.

    Args:
        text: the YAML text.
        source: where it came from, for error messages.
        expected: the top-level keys, named when the text is empty or not a mapping.

    Raises:
        ConfigError: the text is not YAML, is empty, or its top level is not a mapping.
    """
    keys = ", ".join(expected)
    try:
        data = yaml.load(text, Loader=_ConfigLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(source, [_marked_problem(exc)]) from exc
    except (yaml.YAMLError, RecursionError) as exc:
        raise ConfigError(source, [f"unreadable YAML: {exc}"]) from exc
    if data is None:
        raise ConfigError(
            source, [f"the configuration is empty (expected a mapping with keys: {keys})"]
        )
    if not isinstance(data, dict):
        raise ConfigError(
            source, [f"top level: expected a mapping with keys: {keys}, got {show(data)}"]
        )
    return data


def _marked_problem(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = exc.problem or exc.context or "unreadable YAML"
    context = f" ({exc.context})" if exc.problem and exc.context else ""
    kind = "" if isinstance(exc, ConstructorError) else "YAML syntax error: "
    hint = next((h for start, h in _HINTS if problem.startswith(start)), "")
    return f"{where}{kind}{problem}{context}{hint}"


# PyYAML's words for the usual slips, and what the operator should look at.
_HINTS = (
    ("expected <block end>", "; check the indentation of this line"),
    ("mapping values are not allowed", "; quote values that contain ': '"),
    ("found character '\\t'", "; indent with spaces, not tabs"),
    ("could not find expected ':'", "; a key needs ': ' after it"),
)
