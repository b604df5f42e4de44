"""Old-syntax ClassAd text: the one place that owns value quoting (the reference §1.0).

Ads travel as ``Name = value`` lines, one ad per block, blocks separated by a blank line. Values
follow glideinWMS: ints and bools unquoted, everything else a quoted string in which ``"`` is
written ``\\"`` and a newline the two characters ``\\n``. In the old syntax a backslash is literal
except before a quote, and ``\\"`` at the very end of a line is a literal backslash that closes the
string; with these rules every string without a newline reads back exactly as it was written. A
newline reads back as the two characters backslash and ``n`` (glideinWMS readers of a multi-line
value, the public key, turn them back themselves).

Values that are expressions rather than literals are carried as :class:`AdExpr`, a ``str`` holding
the canonical *new-syntax* text of the expression (the syntax constraints are written in); it is
written unquoted and read back as an ``AdExpr`` again. Reading never evaluates an expression.

Constraints are built from untrusted values only through :func:`string_literal` and
:func:`string_list_literal`, and evaluated with classad2 (:func:`compile_constraint`,
:func:`matches`), never by hand.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypeVar

import classad2

from gwms_tasks.errors import PermanentError

AdValue: TypeAlias = int | bool | float | str
"""A value of one ClassAd attribute, as the project handles it (an AdExpr is a str)."""

_M = TypeVar("_M", bound=Mapping[str, AdValue])

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# `.` and `-` after the first character: 3.10 frontends send `GlideinEncParam<entry>.idtoken`.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_LINE = re.compile(r"[ \t]*([^\s=]+)[ \t]*=[ \t]*(.*?)[ \t\r]*")
_INT = re.compile(r"-?(?:0|[1-9][0-9]*)")
_OTHER_LITERAL = re.compile(
    r"-?(?:0|[1-9][0-9]*)\.[0-9]+(?:[eE][+-]?[0-9]+)?"
    r"|(?i:true|false)"
    r'|"(?:(?>[^"\\]+)|\\"|\\(?!"))*\\?"'
)
_NEW_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_HTCONDOR_ONLY_CALL = re.compile(
    r"\b(stringList(?!sIntersect)\w*|userHome|userMap|splitUserName|splitSlotName|envV1ToV2"
    r"|mergeEnvironment|evalInEachContext|countMatches)\s*\(",
    re.IGNORECASE,
)
_EVAL_CALL = re.compile(r"\beval\s*\(", re.IGNORECASE)
# SystemError: how classad2's C code reports some failed conversions (an int beyond 64 bits).
CLASSAD_ERRORS = (classad2.ClassAdException, ValueError, TypeError, SystemError)
"""What classad2 raises on input it cannot take (parsing, building or evaluating)."""
_OLD = classad2.ParserType.Old
# classad2's old-syntax parser loads HTCondor's library, which registers HTCondor's ClassAd
# functions (stringListMember, ...). Load it now, so that what a constraint can call does not
# depend on whether some text was parsed before it.
classad2.parseNext("X = 1\n", _OLD)


class AdFormatError(PermanentError):
    """ClassAd text, a name, a value or a constraint is malformed."""


class AdExpr(str):
    """A ClassAd expression (canonical new-syntax text), written unquoted in an ad.

    ``AdExpr("(ReqFactoryName =?= \\"f\\")")`` validates the text with classad2 and keeps the
    library's canonical spelling of it, so equal expressions compare equal as strings. An
    expression that is a mere literal (``AdExpr("1")``) reads back as the plain value.

    Raises:
        AdFormatError: the text is not exactly one valid ClassAd expression.
    """

    __slots__ = ()

    def __new__(cls, text: str) -> AdExpr:
        return str.__new__(cls, repr(parse_expression(text)))

    @classmethod
    def _canonical(cls, text: str) -> AdExpr:
        """Wrap text that classad2 itself produced, skipping a second validation."""
        return str.__new__(cls, text)


def check_attr_name(name: str) -> str:
    """Return ``name`` if it is a valid attribute name, else raise AdFormatError."""
    if not isinstance(name, str) or _NAME.fullmatch(name) is None:
        raise AdFormatError(
            f"invalid attribute name {name!r}: expected a letter or '_' followed by letters, "
            "digits, '_', '.' or '-'"
        )
    return name


def render_value(value: AdValue) -> str:
    """The old-syntax text of one value (the right-hand side of ``Name = value``).

    Raises:
        AdFormatError: an int outside 64 bits, a string with a NUL or a lone surrogate, an
            expression that the old syntax cannot carry, or a value of another type.
    """
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int):
        return str(int(_checked_int(value)))
    if isinstance(value, AdExpr):
        return _expr_to_old(value)
    if isinstance(value, float):
        return _quote_old(str(value))
    if isinstance(value, str):
        return _quote_old(value)
    raise AdFormatError(f"cannot write a {type(value).__name__} as a ClassAd value: {value!r}")


def render_ad(attrs: Mapping[str, AdValue]) -> str:
    """One ad as ``Name = value`` lines, sorted by name without regard to case.

    Raises:
        AdFormatError: an empty ad, an invalid name, two names differing only in case (ClassAd
            names are case-insensitive), or a value :func:`render_value` refuses.
    """
    if not attrs:
        raise AdFormatError("an ad needs at least one attribute")
    seen: dict[str, str] = {}
    for name in attrs:
        check_attr_name(name)
        other = seen.setdefault(name.lower(), name)
        if other != name:
            raise AdFormatError(f"attributes {other!r} and {name!r} differ only in case")
    lines = []
    for name in sorted(attrs, key=str.lower):
        try:
            lines.append(f"{name} = {render_value(attrs[name])}\n")
        except AdFormatError as exc:
            raise AdFormatError(f"attribute {name}: {exc}") from exc
    return "".join(lines)


def render_ads(ads: Iterable[Mapping[str, AdValue]]) -> str:
    """Several ads, a blank line between two of them."""
    return "\n".join(render_ad(attrs) for attrs in ads)


def parse_ads(text: str) -> list[dict[str, AdValue]]:
    """Read old-syntax ads; literals become Python values, other expressions :class:`AdExpr`.

    Blank (whitespace-only) lines separate ads; lines starting with ``#`` are comments. Integers
    and booleans become int and bool, reals float, strings str; lists, nested ads, undefined and
    every non-literal expression become an AdExpr of their text, never evaluated.

    Raises:
        AdFormatError: naming the ad and line, for any line that is not ``Name = expression``,
            a duplicate name, an integer outside 64 bits, or text classad2 cannot read.
    """
    _check_text(text, "the ClassAd text")
    ads: list[dict[str, AdValue]] = []
    block: list[tuple[int, str]] = []
    for number, line in enumerate([*text.split("\n"), ""], start=1):
        if line.strip(" \t\r"):
            block.append((number, line))
        elif block:
            attrs = _parse_block(len(ads) + 1, block)
            if attrs:
                ads.append(attrs)
            block = []
    return ads


def string_literal(value: str) -> str:
    """``value`` as a string literal for a constraint (classad2's new-syntax quoting).

    For constraints and :class:`AdExpr` text only; ad values are written by :func:`render_value`.
    """
    _check_text(value, "a string literal")
    return str(classad2.quote(value))


def string_list_literal(values: Iterable[str]) -> str:
    """A ClassAd list of string literals, ``{"a", "b"}``.

    Use it with ``identicalMember(Attr, {...})`` (case-sensitive) or ``member(Attr, {...})``
    (case-insensitive). Unlike the comma-separated string ``stringListMember`` takes, every
    value stays one element whatever it contains, and both functions are classad2 built-ins.
    """
    return "{" + ", ".join(string_literal(value) for value in values) + "}"


@dataclass(frozen=True, slots=True, eq=False)
class Constraint:
    """A compiled ClassAd constraint, evaluated against many ads.

    An ad matches when the constraint evaluates to true, or to a non-zero number (HTCondor's
    EvalBool); undefined, error and any other value do not match.

    Attributes:
        text: the canonical text of the constraint.
    """

    text: str
    _tree: Any = field(repr=False)
    # Names the constraint reads; None when it may read attributes in ways not known up front.
    _refs: tuple[str, ...] | None = field(repr=False)

    def matches(self, attrs: Mapping[str, AdValue]) -> bool:
        """Whether one ad satisfies the constraint.

        Raises:
            AdFormatError: an attribute value classad2 cannot hold.
        """
        scope = classad2.ClassAd(_scope_values(attrs, self._refs))
        return is_true(self._tree.eval(scope=scope))

    def select(self, ads: Iterable[_M]) -> list[_M]:
        """The ads that match, in their order."""
        return [attrs for attrs in ads if self.matches(attrs)]


@functools.lru_cache(maxsize=256)
def compile_constraint(text: str) -> Constraint:
    """Parse a constraint once for evaluation against many ads.

    Raises:
        AdFormatError: the text is not one valid expression, or it calls a function of
            HTCondor's library (``stringListMember``, ...) that classad2 cannot evaluate here.
    """
    tree = parse_expression(text)
    canonical = repr(tree)
    code = _NEW_STRING.sub('""', canonical)
    htcondor_call = _HTCONDOR_ONLY_CALL.search(code)
    if htcondor_call and not _htcondor_functions_loaded():
        raise AdFormatError(
            f"constraint {text!r} calls {htcondor_call.group(1)}(), which classad2 cannot "
            "evaluate without HTCondor's function library; use identicalMember(Attr, "
            "string_list_literal(...)) instead"
        )
    return Constraint(canonical, tree, _referenced_names(tree, code))


def matches(constraint: str, attrs: Mapping[str, AdValue]) -> bool:
    """Whether one ad satisfies a constraint (see :class:`Constraint`).

    Raises:
        AdFormatError: the constraint is invalid, or an attribute value is unusable.
    """
    return compile_constraint(constraint).matches(attrs)


def parse_expression(text: str) -> Any:
    """The classad2 tree of exactly one new-syntax expression (what :class:`AdExpr` keeps).

    Raises:
        AdFormatError: the text is not exactly one valid ClassAd expression.
    """
    if not isinstance(text, str):
        raise AdFormatError(f"a ClassAd expression must be text, not {type(text).__name__}")
    _check_text(text, "the expression")
    if text.strip():
        bare = _parse_new_single(f"[X = {text}]")
        wrapped = _parse_new_single(f"[X = ({text})]")
        if bare is not None and wrapped is not None and repr(wrapped) == f"({bare!r})":
            return bare
    raise AdFormatError(f"not a valid ClassAd expression: {text[:200]!r}")


def to_classad(attrs: Mapping[str, AdValue]) -> Any:
    """A classad2 ClassAd holding ``attrs``, expressions as expressions (not strings).

    Raises:
        AdFormatError: a value classad2 cannot hold (an int beyond 64 bits, a NUL character...).
    """
    values = {name: _classad_value(name, value) for name, value in attrs.items()}
    try:
        return classad2.ClassAd(values)
    except CLASSAD_ERRORS as exc:
        raise AdFormatError(f"attributes cannot be made into a ClassAd: {exc}") from exc


def is_true(result: object) -> bool:
    """HTCondor's EvalBool of an evaluation result: true, or a non-zero number."""
    if isinstance(result, classad2.Value):
        return False
    if isinstance(result, bool):
        return result
    return isinstance(result, int | float) and result != 0


def _checked_int(value: int) -> int:
    if not INT64_MIN <= value <= INT64_MAX:
        raise AdFormatError(f"integer {value} does not fit in 64 bits")
    return value


def _check_text(text: str, what: str) -> None:
    if "\x00" in text:
        raise AdFormatError(f"{what} contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise AdFormatError(f"{what} is not valid Unicode (position {exc.start})") from exc


def _quote_old(text: str) -> str:
    _check_text(text, "a string value")
    return '"' + text.replace('"', '\\"').replace("\n", "\\n") + '"'


def _expr_to_old(expr: AdExpr) -> str:
    holder = classad2.ClassAd()
    holder["X"] = classad2.ExprTree(str(expr))
    old = str(holder.printOld())
    prefix = "X = "
    rhs = old[len(prefix) : -1] if old.startswith(prefix) and old.endswith("\n") else ""
    written = _parse_old_single(f"X = {rhs}\n") if rhs and "\n" not in rhs else None
    if written is None or repr(written) != str(expr):
        raise AdFormatError(f"expression {str(expr)!r} cannot be written in old ClassAd syntax")
    return rhs


def _parse_block(ad_number: int, block: list[tuple[int, str]]) -> dict[str, AdValue]:
    where = f"ad {ad_number}"
    line_of: dict[str, int] = {}
    written: dict[str, str] = {}
    for number, line in block:
        if line.lstrip().startswith("#"):
            continue
        name = _check_line(f"{where}, line {number}", line)
        if name.lower() in line_of:
            raise AdFormatError(f"{where}, line {number}: attribute {name} appears twice")
        line_of[name.lower()] = number
        written[name.lower()] = name
    if not line_of:
        return {}
    try:
        parsed = classad2.parseNext("\n".join(line for _, line in block) + "\n", _OLD)
        names = [] if parsed is None else list(parsed)
    except (*CLASSAD_ERRORS, UnicodeError) as exc:
        raise AdFormatError(f"{where} (line {block[0][0]}): unreadable: {exc}") from exc
    missing = sorted(line_of[key] for key in line_of.keys() - {name.lower() for name in names})
    if missing or len(names) != len(line_of):
        first_bad = missing[0] if missing else block[0][0]
        raise AdFormatError(f"{where}, line {first_bad}: classad2 could not read this attribute")
    # Names as written and in line order; classad2 looks them up without regard to case.
    return {name: _python_value(parsed, name) for name in written.values()}


def _check_line(where: str, line: str) -> str:
    match = _LINE.fullmatch(line)
    if match is None:
        raise AdFormatError(f"{where}: expected 'Name = value', got {line[:80]!r}")
    name, rhs = match.groups()
    try:
        check_attr_name(name)
    except AdFormatError as exc:
        raise AdFormatError(f"{where}: {exc}") from exc
    if _INT.fullmatch(rhs):
        if not INT64_MIN <= int(rhs) <= INT64_MAX:
            raise AdFormatError(f"{where}: attribute {name}: integer does not fit in 64 bits")
    elif not _OTHER_LITERAL.fullmatch(rhs) and not _old_expression_ok(rhs):
        raise AdFormatError(f"{where}: attribute {name}: not a ClassAd expression: {rhs[:80]!r}")
    return name


def _old_expression_ok(rhs: str) -> bool:
    # The old parser silently ignores text after a complete expression ("1 2" reads as 1).
    # Parsing the text bare and in parentheses exposes that: both must succeed, and the
    # parenthesised tree must be exactly the bare tree in parentheses.
    bare = _parse_old_single(f"X = {rhs}\n")
    wrapped = _parse_old_single(f"X = ({rhs})\n")
    return bare is not None and wrapped is not None and repr(wrapped) == f"({bare!r})"


def _parse_old_single(text: str) -> Any:
    try:
        parsed = classad2.parseNext(text, _OLD)
    except (*CLASSAD_ERRORS, UnicodeError):
        return None
    if parsed is None or list(parsed) != ["X"]:
        return None
    return parsed.lookup("X")


def _parse_new_single(text: str) -> Any:
    try:
        parsed = classad2.ClassAd(text)
    except CLASSAD_ERRORS:
        return None
    if list(parsed) != ["X"]:
        return None
    return parsed.lookup("X")


def _python_value(parsed: Any, name: str) -> AdValue:
    try:
        value = parsed[name]
    except CLASSAD_ERRORS:
        value = None
    if isinstance(value, bool | int | float | str) and not isinstance(value, classad2.Value):
        return value
    return AdExpr._canonical(repr(parsed.lookup(name)))


def _htcondor_functions_loaded() -> bool:
    # Importing htcondor2 (which adapters do, the core may not) registers these in classad2.
    return classad2.ExprTree('stringListMember("a", "a")').eval() is True


def _referenced_names(tree: Any, code: str) -> tuple[str, ...] | None:
    if _EVAL_CALL.search(code):
        return None
    names = []
    for ref in classad2.ClassAd().externalRefs(tree):
        name = ref[3:] if ref[:3].lower() == "my." else ref
        if "." in name:
            return None
        if name:
            names.append(name)
    return tuple(names)


def _scope_values(attrs: Mapping[str, AdValue], refs: tuple[str, ...] | None) -> dict[str, object]:
    if refs is None:
        return {name: _classad_value(name, value) for name, value in attrs.items()}
    scope: dict[str, object] = {}
    lowered: dict[str, str] | None = None
    for ref in refs:
        key: str | None = ref
        if ref not in attrs:
            # ClassAd names are case-insensitive; index the ad's names only when needed.
            if lowered is None:
                lowered = {name.lower(): name for name in attrs}
            key = lowered.get(ref.lower())
        if key is None:
            continue
        value = attrs[key]
        if isinstance(value, AdExpr):
            # An expression attribute may read attributes the constraint does not name.
            return _scope_values(attrs, None)
        scope[key] = _classad_value(key, value)
    return scope


def _classad_value(name: str, value: AdValue) -> object:
    if isinstance(value, AdExpr):
        return classad2.ExprTree(str(value))
    if isinstance(value, bool | float):
        return value
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise AdFormatError(f"attribute {name}: integer {value} does not fit in 64 bits")
        return int(value)
    if isinstance(value, str):
        _check_text(value, f"attribute {name}")
        return str(value)
    raise AdFormatError(f"attribute {name}: a {type(value).__name__} is not a ClassAd value")
