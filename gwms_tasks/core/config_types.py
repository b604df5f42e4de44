"""Building blocks of the factory config schema: the strict base model and the value types.

Every leaf type carries what it expects in words (an :class:`Expect` marker or plain bounds), so
that ``config_errors`` can turn a validation failure into "expected ..., got ..." without any
pydantic wording. Collections are read-only: mappings become :class:`ReadOnlyMap` and lists
become tuples, so a loaded config cannot be changed by accident anywhere in the program.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Annotated, Any, Final, TypeVar
from urllib.parse import urlsplit

from annotated_types import Ge, Gt, Interval
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainValidator,
    SerializerFunctionWrapHandler,
    StringConstraints,
    WrapSerializer,
)
from pydantic_core import PydanticCustomError

PROBLEM: Final = "gwms_problem"
"""Error type of a problem found by our own validators; its message is shown as is."""

PROBLEMS: Final = "gwms_problems"
"""Error type of a cross-field check: ``problems`` holds (relative key path, message) pairs."""

ALL: Final = "All"
"""The wildcard security class / frontend of whitelists and downtimes."""

FACTORY: Final = "factory"
"""The downtime scope of the whole factory."""


@dataclass(frozen=True, slots=True)
class Expect:
    """Annotation metadata: what a value of this type looks like, in words, for error messages."""

    text: str


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, values are not coerced, frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def invalid(message: str) -> PydanticCustomError:
    """A validation error whose message is shown to the operator unchanged."""
    return PydanticCustomError(PROBLEM, "{message}", {"message": message})


def problems(found: list[tuple[str, str]]) -> PydanticCustomError:
    """A validation error for cross-field problems, each at a key path below the section."""
    summary = "; ".join(f"{path}: {message}" for path, message in found)
    return PydanticCustomError(
        PROBLEMS, "{summary}", {"summary": summary, "problems": tuple(found)}
    )


K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")


def show(value: object) -> str:
    """A short rendering of a YAML value for "got ..." in error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return str(value)  # numbers, dates


class ReadOnlyMap(Mapping[K, V]):
    """A mapping that cannot be changed; unlike ``MappingProxyType`` it copies and pickles."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[K, V] | None = None) -> None:
        self._data: dict[K, V] = dict(data or {})

    def __getitem__(self, key: K) -> V:
        return self._data[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return repr(self._data)


def _read_only(value: Mapping[Any, Any]) -> Mapping[Any, Any]:
    return ReadOnlyMap(value)


def _as_dict(value: Mapping[Any, Any], handler: SerializerFunctionWrapHandler) -> Any:
    return handler(dict(value))


def _list_to_tuple(value: object) -> object:
    return tuple(value) if isinstance(value, list) else value


FrozenMap = Annotated[Mapping[K, V], AfterValidator(_read_only), WrapSerializer(_as_dict)]
"""A YAML mapping, validated key by key and value by value, kept read-only."""

FrozenList = Annotated[tuple[T, ...], BeforeValidator(_list_to_tuple), Expect("a list")]
"""A YAML list, validated item by item, kept as a tuple."""


def empty_map() -> Mapping[Any, Any]:
    """Default factory for an empty read-only mapping."""
    return ReadOnlyMap()


_NAME = r"^[A-Za-z0-9._-]+$"
_NAME_WORDS = "letters, digits, '.', '_' or '-'"

SafeName = Annotated[str, StringConstraints(pattern=_NAME), Expect(f"a name of {_NAME_WORDS}")]
"""A name that is safe in ad Names, file names and Redis keys (no '@', ':', '/', spaces)."""


def _not_reserved(value: str) -> str:
    if value in (ALL, FACTORY):
        raise invalid(f"'{value}' is reserved (it means every scope in downtimes and whitelists)")
    return value


ScopeName = Annotated[SafeName, AfterValidator(_not_reserved)]
"""An entry, frontend or security class name: a safe name other than 'All' and 'factory'."""

UserName = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$"),
    Expect(f"a POSIX user name (a letter or '_' first, then up to 31 {_NAME_WORDS})"),
]

AttrName = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$"),
    Expect("an attribute name (a letter or '_' first, then letters, digits or '_')"),
]

SubmitAttrName = Annotated[
    str,
    StringConstraints(pattern=r"^\+?[A-Za-z_][A-Za-z0-9_.]*$"),
    Expect("a submit attribute name like '+ProjectName' or 'request_memory'"),
]

FrontendKey = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9._-]+:[A-Za-z0-9._-]+$"),
    Expect("a 'frontend:security_class' key"),
]

Identity = Annotated[
    str,
    StringConstraints(pattern=r"^\S+$"),
    Expect("an identity without spaces, like 'vofrontend@frontend.example.org'"),
]

NonEmpty = Annotated[str, StringConstraints(pattern=r"\S"), Expect("a non-empty string")]

NonNegInt = Annotated[int, Ge(0)]
PosInt = Annotated[int, Ge(1)]
Seconds = Annotated[float, Ge(0)]
PosSeconds = Annotated[float, Gt(0)]
Fraction = Annotated[float, Interval(ge=0, le=1)]
Port = Annotated[int, Interval(ge=1, le=65535)]


def _scalar(value: object) -> str | int | bool:
    if isinstance(value, str | int):  # bool is an int
        return value
    raise invalid(f"expected a string, an integer or true/false, got {show(value)}")


ScalarValue = Annotated[
    str | int | bool, PlainValidator(_scalar), Expect("a string, an integer or true/false")
]
"""An attribute value as glideinWMS knows them: ints and bools unquoted in ads, all else strings."""


def _to_path(value: object) -> object:
    return PurePosixPath(value) if isinstance(value, str) and value.strip() else value


ConfigPath = Annotated[PurePosixPath, BeforeValidator(_to_path), Expect("a non-empty path")]


def _url_checker(schemes: tuple[str, ...], what: str) -> Any:
    def check(value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in schemes or not (parts.netloc or parts.path):
            raise invalid(
                f"expected {what} URL ({', '.join(s + '://' for s in schemes)}), got {show(value)}"
            )
        return value

    return AfterValidator(check)


WebUrl = Annotated[str, _url_checker(("http", "https"), "an http(s)"), Expect("an http(s) URL")]
RedisUrl = Annotated[
    str, _url_checker(("redis", "rediss", "unix"), "a Redis"), Expect("a Redis URL")
]
BrokerUrl = Annotated[
    str,
    _url_checker(("redis", "rediss", "amqp", "amqps"), "a Celery broker"),
    Expect("a Celery broker URL"),
]
