"""Arguments of glidein_startup.sh and the escaping of ``-param_`` values (the reference §4.4).

A glidein's arguments travel through a Condor submit file, a grid CE and a batch system, each of
which may split or reinterpret shell-special characters. The factory therefore rewrites every
special character of a parameter value as a reversible token (``.dot,``, ``.nbsp,`` ...) and
``glidein_startup.sh`` decodes them. Because ``.`` and ``,`` are themselves escaped, an escaped
value holds a ``.`` only at the start of a token and the first ``,`` after it ends that token, so
decoding is a single left-to-right scan.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass

from gwms_tasks.core.staging import SignType
from gwms_tasks.errors import PermanentError

# Character -> token name, in the order of the reference; the token is ``.<name>,``.
_TOKEN_NAMES: dict[str, str] = {
    ".": "dot",
    ",": "comma",
    "&": "amp",
    "\\": "backslash",
    "|": "pipe",
    "`": "fork",
    '"': "quot",
    "'": "singquot",
    "=": "eq",
    "+": "plus",
    "-": "minus",
    "<": "lt",
    ">": "gt",
    "(": "open",
    ")": "close",
    "{": "gopen",
    "}": "gclose",
    "[": "sopen",
    "]": "sclose",
    "#": "comment",
    "$": "dollar",
    "*": "star",
    "?": "question",
    "!": "not",
    "~": "tilde",
    ":": "colon",
    ";": "semicolon",
    " ": "nbsp",
}
ESCAPE_TOKENS: dict[str, str] = {char: f".{name}," for char, name in _TOKEN_NAMES.items()}
_CHAR_OF_NAME: dict[str, str] = {name: char for char, name in _TOKEN_NAMES.items()}
_TOKEN_RE = re.compile(r"\.([a-z]+),")
_PARAM_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEX_DIGITS = frozenset("0123456789abcdef")

# Whitespace that splits arguments (C isspace), and what cannot travel in a parameter at all.
_SPLITTING = frozenset(" \t\n\v\f\r")
_UNCARRIABLE = (_SPLITTING - {" "}) | {"\x00"}


def escape_param(value: str) -> str:
    """Escape one ``-param_`` value so that it contains no shell or Condor special character.

    Args:
        value: the raw parameter value.

    Returns:
        The value with each special character replaced by its token.
    """
    return "".join(ESCAPE_TOKENS.get(char, char) for char in value)


def unescape_param(text: str) -> str:
    """Reverse :func:`escape_param`, as ``glidein_startup.sh`` does.

    Text that is not a known token (a stray ``.``, ``.unknown,``) is kept literally, so a value
    the factory did not escape still decodes to itself when it holds no token.

    Args:
        text: an escaped parameter value.

    Returns:
        The decoded value.
    """
    return _TOKEN_RE.sub(lambda match: _CHAR_OF_NAME.get(match[1], match[0]), text)


class Verbosity(enum.StrEnum):
    """``-v`` values of glidein_startup.sh; they set the failure sleep and tracing."""

    STD = "std"
    NODEBUG = "nodebug"
    FAST = "fast"
    CHECK = "check"


class SlotsLayout(enum.StrEnum):
    """``-slotslayout`` values."""

    FIXED = "fixed"
    PARTITIONABLE = "partitionable"


@dataclass(frozen=True, slots=True)
class GlideinStartup:
    """The factory-side arguments of one glidein submission.

    Attributes:
        glidein_name: the factory instance name (``-name``).
        entry_name: ``-entry``.
        client_name: the frontend's ClientName ``frontend.group`` (``-clientname``).
        schedd: the factory schedd that submits the glidein (``-schedd``).
        factory_name: ``-factory``.
        web_url: the factory staging URL (``-web``).
        main_descript / main_sign: main description file name and hash of its signature file.
        entry_descript / entry_sign: the same for the entry.
        credential_id: the frontend's credential id (``-submitcredid``).
        sign_type: ``sha1`` (what 3.10 glideins understand) or ``sha256``.
        proxy_url: HTTP proxy for downloads, or ``None`` (the string) for none.
        startup_dir: ``-dir``: ``.``, ``Condor``, ``TMPDIR``, ``AUTO``, ``OSG`` or a path.
        slots_layout: fixed or partitionable.
        verbosity: ``-v``.
    """

    glidein_name: str
    entry_name: str
    client_name: str
    schedd: str
    factory_name: str
    web_url: str
    main_descript: str
    main_sign: str
    entry_descript: str
    entry_sign: str
    credential_id: str
    sign_type: SignType = SignType.SHA1
    proxy_url: str = "None"
    startup_dir: str = "."
    slots_layout: SlotsLayout = SlotsLayout.FIXED
    verbosity: Verbosity = Verbosity.STD


@dataclass(frozen=True, slots=True)
class ClientStaging:
    """The frontend's own staging area (``-clientweb`` and friends), from its glideclient ad."""

    web_url: str
    descript_file: str
    descript_sign: str
    sign_type: SignType = SignType.SHA1


@dataclass(frozen=True, slots=True)
class ClientGroupStaging:
    """The frontend group's staging area (``-clientgroup`` and friends)."""

    group: str
    web_url: str
    descript_file: str
    descript_sign: str


def glidein_arguments(
    startup: GlideinStartup,
    params: Mapping[str, str],
    client: ClientStaging | None = None,
    group: ClientGroupStaging | None = None,
    cluster: str = "$(Cluster)",
    subcluster: str = "$(Process)",
) -> list[str]:
    """The full argument vector of glidein_startup.sh, in the order of the reference §4.4.

    Args:
        startup: the factory-side values.
        params: glidein parameters (entry defaults merged with the frontend's); empty values
            are skipped, the others escaped.
        client: the frontend staging area, if the request named one.
        group: the frontend group staging area; only together with ``client``.
        cluster: value of ``-cluster`` (the Condor macro by default).
        subcluster: value of ``-subcluster``.

    Returns:
        One string per argument.

    Raises:
        PermanentError: a value cannot be passed (empty, whitespace, bad hash or param name).
    """
    pairs = _base_pairs(startup) + _client_pairs(client, group)
    pairs += [(f"-param_{name}", escape_param(value)) for name, value in _checked(params)]
    pairs += [("-cluster", cluster), ("-subcluster", subcluster)]
    for option, value in pairs:
        if not value or set(value) & _SPLITTING:
            raise PermanentError(f"glidein argument {option}: empty or has whitespace: {value!r}")
    return [item for pair in pairs for item in pair]


def _base_pairs(startup: GlideinStartup) -> list[tuple[str, str]]:
    for option, digest in (("-sign", startup.main_sign), ("-signentry", startup.entry_sign)):
        _check_digest(option, digest, startup.sign_type)
    return [
        ("-v", str(startup.verbosity)),
        ("-name", startup.glidein_name),
        ("-entry", startup.entry_name),
        ("-clientname", startup.client_name),
        ("-schedd", startup.schedd),
        ("-proxy", startup.proxy_url),
        ("-factory", startup.factory_name),
        ("-web", startup.web_url),
        ("-sign", startup.main_sign),
        ("-signentry", startup.entry_sign),
        ("-signtype", startup.sign_type.value),
        ("-descript", startup.main_descript),
        ("-descriptentry", startup.entry_descript),
        ("-dir", startup.startup_dir),
        ("-param_GLIDEIN_Client", escape_param(startup.client_name)),
        ("-submitcredid", startup.credential_id),
        ("-slotslayout", str(startup.slots_layout)),
    ]


def _client_pairs(
    client: ClientStaging | None, group: ClientGroupStaging | None
) -> list[tuple[str, str]]:
    if client is None:
        if group is not None:
            raise PermanentError(
                "glidein arguments: a client group staging area needs a client one"
            )
        return []
    _check_digest("-clientsign", client.descript_sign, client.sign_type)
    pairs = [
        ("-clientweb", client.web_url),
        ("-clientsign", client.descript_sign),
        ("-clientsigntype", client.sign_type.value),
        ("-clientdescript", client.descript_file),
    ]
    if group is not None:
        # The group area is signed with the client's sign type: there is no group sign type.
        _check_digest("-clientsigngroup", group.descript_sign, client.sign_type)
        pairs += [
            ("-clientgroup", group.group),
            ("-clientwebgroup", group.web_url),
            ("-clientsigngroup", group.descript_sign),
            ("-clientdescriptgroup", group.descript_file),
        ]
    return pairs


def _checked(params: Mapping[str, str]) -> list[tuple[str, str]]:
    """Non-empty params, with names the glidein can write as glidein_config keys."""
    kept = []
    for name, value in params.items():
        if not _PARAM_NAME_RE.fullmatch(name):
            raise PermanentError(
                f"glidein parameter name {name!r}: expected [A-Za-z_][A-Za-z0-9_]*"
            )
        if set(value) & _UNCARRIABLE:
            raise PermanentError(
                f"glidein parameter {name}: a value cannot hold tabs, line breaks or NUL"
                f" (only spaces are escaped): {value!r}"
            )
        if value and name != "GLIDEIN_Client":
            kept.append((name, value))
    return kept


def _check_digest(option: str, digest: str, sign_type: SignType) -> None:
    if len(digest) != len(sign_type.digest(b"")) or not set(digest) <= _HEX_DIGITS:
        raise PermanentError(f"glidein argument {option}: expected a {sign_type} hex digest")
