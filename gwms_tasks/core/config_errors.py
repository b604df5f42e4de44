"""Turn pydantic validation errors into operator messages: ``key.path: expected ..., got ...``.

The error location is walked through the schema's types, so that each message can say what
the key expects (from an :class:`~gwms_tasks.core.config_types.Expect` marker, bounds, enum
values or model keys), list the keys a section accepts when one is unknown, and leave out the
tags pydantic adds to locations inside tagged unions.
"""

from __future__ import annotations

import enum
import inspect
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from gwms_tasks.core.config_types import PROBLEM, PROBLEMS, Expect, show

_KEY = "[key]"


@dataclass(frozen=True, slots=True)
class _Node:
    """A place in the schema: its type, the annotation metadata on it, and its parent model."""

    annotation: Any
    metadata: tuple[Any, ...] = ()
    parent: type[BaseModel] | None = None


def translate(error: ValidationError, root: type[BaseModel]) -> list[str]:
    """One message per problem of ``error``, raised while validating ``root``."""
    found: list[str] = []
    for detail in error.errors(include_url=False):
        found.extend(_messages(detail, root))
    return found


def _messages(detail: ErrorDetails, root: type[BaseModel]) -> list[str]:
    path, node = _walk(root, tuple(detail["loc"]))
    if detail["type"] == PROBLEMS:
        return [f"{_join(path, sub)}: {message}" for sub, message in detail["ctx"]["problems"]]
    sub, text = _explain(detail, node)
    return [f"{_join(path, sub) or 'top level'}: {text}"]


def _explain(detail: ErrorDetails, node: _Node) -> tuple[str, str]:
    """The key below the error location to name (often none), and what went wrong."""
    kind, ctx = detail["type"], detail.get("ctx", {})
    if kind == PROBLEM:
        return "", str(ctx["message"])
    if kind == "missing":
        return "", f"missing required key (expected {describe(node)})"
    if kind == "extra_forbidden":
        keys = ", ".join(node.parent.model_fields) if node.parent else "none"
        return "", f"unknown key (expected one of: {keys})"
    if kind in ("union_tag_not_found", "union_tag_invalid"):
        tags = ", ".join(_union_tags(node.annotation))
        if kind == "union_tag_not_found":
            return "kind", f"missing required key (expected one of: {tags})"
        given = detail["input"].get("kind") if isinstance(detail["input"], Mapping) else None
        return "kind", f"expected one of: {tags}; got {show(given)}"
    expected = describe(node)
    separator = ";" if expected.startswith("one of") else ","  # keep the list readable
    return "", f"expected {expected}{separator} got {show(detail['input'])}"


def _join(path: str, sub: str) -> str:
    if not path or not sub:
        return path or sub
    return f"{path}{sub}" if sub.startswith("[") else f"{path}.{sub}"


def _walk(root: type[BaseModel], loc: tuple[int | str, ...]) -> tuple[str, _Node]:
    """The dotted key path of ``loc`` and the schema node it ends at."""
    path = ""
    node = _Node(root)
    index = 0
    while index < len(loc):
        part = loc[index]
        is_key = index + 1 < len(loc) and loc[index + 1] == _KEY
        shown, node = _step(_unwrap(node), part, is_key)
        if shown is not None:
            path = _join(path, shown)
        index += 2 if is_key else 1
    return path, _unwrap(node)


def _step(node: _Node, part: int | str, is_key: bool) -> tuple[str | None, _Node]:
    """Go one location part down from ``node``; return what to show and where we are."""
    annotation = node.annotation
    origin = get_origin(annotation)
    if _is_model(annotation):
        field = annotation.model_fields.get(str(part))
        if field is None:
            return str(part), _Node(Any, parent=annotation)
        return str(part), _Node(field.annotation, tuple(field.metadata), annotation)
    if origin in (Mapping, dict):
        key_type, value_type = get_args(annotation)
        return str(part), _Node(key_type if is_key else value_type)
    if origin is tuple:
        return f"[{part}]", _Node(get_args(annotation)[0])
    if _is_union(annotation):
        for member in get_args(annotation):
            if str(part) in _union_tags(member):
                return None, _Node(member)
    return str(part), _Node(Any)


def _unwrap(node: _Node) -> _Node:
    """Strip ``Annotated`` (keeping its metadata) and ``| None`` from a node's type."""
    annotation, metadata = node.annotation, node.metadata
    while True:
        if get_origin(annotation) is Annotated:
            annotation, *extra = get_args(annotation)
            metadata = (*metadata, *extra)
            continue
        if _is_union(annotation):
            members = [m for m in get_args(annotation) if m is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
        return _Node(annotation, metadata, node.parent)


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType)


def _is_model(annotation: Any) -> bool:
    return inspect.isclass(annotation) and issubclass(annotation, BaseModel)


def _union_tags(annotation: Any) -> list[str]:
    """The ``kind`` values of the models in a tagged union (or of one model)."""
    members = get_args(annotation) if _is_union(annotation) else (annotation,)
    tags: list[str] = []
    for member in members:
        field = member.model_fields.get("kind") if _is_model(member) else None
        if field is not None and get_origin(field.annotation) is Literal:
            tags.extend(str(tag) for tag in get_args(field.annotation))
    return tags


def describe(node: _Node) -> str:
    """What a value at ``node`` must look like, in words."""
    for item in node.metadata:
        if isinstance(item, Expect):
            return item.text
    annotation = node.annotation
    if annotation in _SIMPLE:
        return _SIMPLE[annotation] + _bounds(node.metadata)
    if inspect.isclass(annotation) and issubclass(annotation, enum.Enum):
        return "one of: " + ", ".join(str(member.value) for member in annotation)
    if _is_model(annotation):
        return "a mapping with keys: " + ", ".join(annotation.model_fields)
    if _is_union(annotation):
        return "a mapping with a 'kind' of: " + ", ".join(_union_tags(annotation))
    return "a mapping" if get_origin(annotation) in (Mapping, dict) else "a valid value"


_SIMPLE: dict[object, str] = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
}


def _bounds(metadata: tuple[Any, ...]) -> str:
    low, high, above = (_bound(metadata, name) for name in ("ge", "le", "gt"))
    if low is not None and high is not None:
        return f" between {low} and {high}"
    if low is not None:
        return f" >= {low}"
    if above is not None:
        return f" > {above}"
    return ""


def _bound(metadata: tuple[Any, ...], name: str) -> object:
    """The first ``ge``/``le``/``gt`` bound among annotated-types constraints."""
    for item in metadata:
        value = getattr(item, name, None)
        if value is not None:
            return value
    return None
