"""glidein_startup.sh parameter escaping and argument vector (the reference §4.4)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gwms_tasks.core.escaping import (
    ClientGroupStaging,
    ClientStaging,
    GlideinStartup,
    SlotsLayout,
    Verbosity,
    escape_param,
    glidein_arguments,
    unescape_param,
)
from gwms_tasks.core.staging import SignType
from gwms_tasks.errors import PermanentError

# The reference's table, written out independently of the module under test.
SPECIALS = ".,&\\|`\"'=+-<>(){}[]#$*?!~:; "
TOKENS = [
    "dot", "comma", "amp", "backslash", "pipe", "fork", "quot", "singquot", "eq", "plus", "minus",
    "lt", "gt", "open", "close", "gopen", "gclose", "sopen", "sclose", "comment", "dollar", "star",
    "question", "not", "tilde", "colon", "semicolon", "nbsp",
]  # fmt: skip
SHA1_A = "a" * 40
SHA1_B = "b" * 40


@pytest.mark.parametrize(("char", "token"), list(zip(SPECIALS, TOKENS, strict=True)))
def test_each_special_character_becomes_its_token(char: str, token: str) -> None:
    assert escape_param(f"x{char}y") == f"x.{token},y"
    assert unescape_param(f"x.{token},y") == f"x{char}y"


def test_plain_alphanumerics_are_left_alone() -> None:
    assert escape_param("GLIDEIN_Site_42") == "GLIDEIN_Site_42"


def test_a_literal_dot_token_in_a_value_survives_the_round_trip() -> None:
    escaped = escape_param(".dot,")
    assert escaped == ".dot,dot.comma,"
    assert unescape_param(escaped) == ".dot,"


def test_unknown_tokens_and_stray_dots_decode_to_themselves() -> None:
    assert unescape_param("a.bogus,b") == "a.bogus,b"
    assert unescape_param("v1.2") == "v1.2"
    assert unescape_param("trailing.") == "trailing."


@given(st.text())
def test_any_text_round_trips(value: str) -> None:
    assert unescape_param(escape_param(value)) == value


@given(st.text())
def test_escaped_text_holds_no_special_character_outside_tokens(value: str) -> None:
    escaped = escape_param(value)
    stripped = escaped
    for token in TOKENS:
        stripped = stripped.replace(f".{token},", "")
    assert not set(stripped) & set(SPECIALS)


def _startup(**changes: object) -> GlideinStartup:
    values: dict[str, object] = {
        "glidein_name": "gfactory_instance",
        "entry_name": "ce1",
        "client_name": "fe.main",
        "schedd": "schedd.example.org",
        "factory_name": "fact",
        "web_url": "http://factory.example.org/stage",
        "main_descript": "description.0a1b2c3d.cfg",
        "main_sign": SHA1_A,
        "entry_descript": "description.4e5f6a7b.cfg",
        "entry_sign": SHA1_B,
        "credential_id": "cred-7",
    }
    values.update(changes)
    return GlideinStartup(**values)  # type: ignore[arg-type]


def _options(args: list[str]) -> list[str]:
    return args[0::2]


def test_argument_vector_follows_the_reference_order() -> None:
    args = glidein_arguments(_startup(), {"GLIDEIN_Collector": "pool.example.org:9618"})
    assert _options(args) == [
        "-v", "-name", "-entry", "-clientname", "-schedd", "-proxy", "-factory", "-web", "-sign",
        "-signentry", "-signtype", "-descript", "-descriptentry", "-dir", "-param_GLIDEIN_Client",
        "-submitcredid", "-slotslayout", "-param_GLIDEIN_Collector", "-cluster", "-subcluster",
    ]  # fmt: skip
    assert args[args.index("-param_GLIDEIN_Client") + 1] == "fe.dot,main"
    assert args[args.index("-param_GLIDEIN_Collector") + 1] == "pool.dot,example.dot,org.colon,9618"
    assert args[-4:] == ["-cluster", "$(Cluster)", "-subcluster", "$(Process)"]


def test_unicode_spaces_travel_unescaped_because_no_ce_splits_on_them() -> None:
    args = glidein_arguments(_startup(), {"NBSP": "a\u00a0b"})
    assert args[args.index("-param_NBSP") + 1] == "a\u00a0b"


@given(st.text(st.characters(blacklist_characters="\t\n\v\f\r\x00"), min_size=1))
def test_any_carriable_value_becomes_one_argument_that_decodes_back(value: str) -> None:
    args = glidein_arguments(_startup(), {"P": value})
    assert unescape_param(args[args.index("-param_P") + 1]) == value


def test_empty_params_are_skipped() -> None:
    args = glidein_arguments(_startup(), {"EMPTY": "", "KEPT": "1"})
    assert "-param_EMPTY" not in args
    assert args[args.index("-param_KEPT") + 1] == "1"


def test_verbosity_layout_and_sign_type_are_passed_as_their_values() -> None:
    startup = _startup(
        verbosity=Verbosity.FAST,
        slots_layout=SlotsLayout.PARTITIONABLE,
        sign_type=SignType.SHA256,
        main_sign="c" * 64,
        entry_sign="d" * 64,
    )
    args = glidein_arguments(startup, {})
    assert args[args.index("-v") + 1] == "fast"
    assert args[args.index("-slotslayout") + 1] == "partitionable"
    assert args[args.index("-signtype") + 1] == "sha256"


def test_client_and_group_staging_arguments_come_after_the_factory_ones() -> None:
    client = ClientStaging("http://fe/stage", "description.1.cfg", SHA1_A)
    group = ClientGroupStaging("main", "http://fe/stage/group_main", "description.2.cfg", SHA1_B)
    args = glidein_arguments(_startup(), {"X": "1"}, client=client, group=group)
    options = _options(args)
    assert options[options.index("-slotslayout") + 1 : options.index("-param_X")] == [
        "-clientweb", "-clientsign", "-clientsigntype", "-clientdescript",
        "-clientgroup", "-clientwebgroup", "-clientsigngroup", "-clientdescriptgroup",
    ]  # fmt: skip
    assert args[args.index("-clientwebgroup") + 1] == "http://fe/stage/group_main"


def test_a_group_staging_area_without_a_client_one_is_refused() -> None:
    group = ClientGroupStaging("main", "http://fe/g", "description.2.cfg", SHA1_B)
    with pytest.raises(PermanentError, match="needs a client"):
        glidein_arguments(_startup(), {}, group=group)


@pytest.mark.parametrize(
    ("startup", "params", "message"),
    [
        (_startup(main_sign="xyz"), {}, "-sign"),
        (_startup(entry_sign="A" * 40), {}, "-signentry"),
        (_startup(sign_type=SignType.SHA256), {}, "sha256"),
        (_startup(), {"bad-name": "1"}, "parameter name"),
        (_startup(), {"X": "two\nlines"}, "line breaks"),
        (_startup(), {"X": "tab\there"}, "tabs"),
        (_startup(), {"X": "nul\x00"}, "NUL"),
        (_startup(web_url="http://a b/"), {}, "-web"),
        (_startup(credential_id=""), {}, "-submitcredid"),
    ],
)
def test_values_that_cannot_travel_are_refused_with_the_option_named(
    startup: GlideinStartup, params: dict[str, str], message: str
) -> None:
    with pytest.raises(PermanentError, match=message):
        glidein_arguments(startup, params)
