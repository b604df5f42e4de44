"""Old-syntax ClassAd text: quoting, parsing, constraints (the reference §1.0)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gwms_tasks.core.classad_text import (
    INT64_MAX,
    INT64_MIN,
    AdExpr,
    AdFormatError,
    check_attr_name,
    compile_constraint,
    matches,
    parse_ads,
    render_ad,
    render_ads,
    render_value,
    string_list_literal,
    string_literal,
)
from gwms_tasks.errors import PermanentError

# Text a ClassAd can hold: no NUL, no lone surrogate.
ad_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
one_line_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\n"))
int64 = st.integers(min_value=INT64_MIN, max_value=INT64_MAX)


def _read_back(value: object) -> object:
    (attrs,) = parse_ads(render_ad({"A": value}))  # type: ignore[dict-item]
    return attrs["A"]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (42, "42"),
        (-7, "-7"),
        (True, "True"),
        (False, "False"),
        ("plain", '"plain"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("two\nlines", '"two\\nlines"'),
        ("C:\\dir\\", '"C:\\dir\\"'),
        (1.5, '"1.5"'),
        ("", '""'),
    ],
)
def test_values_are_written_as_glideinwms_writes_them(value: object, text: str) -> None:
    assert render_value(value) == text  # type: ignore[arg-type]


@given(one_line_text)
def test_any_one_line_string_reads_back_unchanged(value: str) -> None:
    assert _read_back(value) == value


@given(ad_text)
def test_a_newline_reads_back_as_backslash_n(value: str) -> None:
    assert _read_back(value) == value.replace("\n", "\\n")


@given(st.one_of(int64, st.booleans()))
def test_ints_and_bools_read_back_with_their_type(value: int) -> None:
    back = _read_back(value)
    assert back == value
    assert type(back) is type(value)


@pytest.mark.parametrize("value", [INT64_MAX + 1, INT64_MIN - 1, 2**80])
def test_an_int_beyond_64_bits_is_refused(value: int) -> None:
    with pytest.raises(AdFormatError, match="64 bits"):
        render_value(value)


@pytest.mark.parametrize("value", ["a\x00b", "lone \udc80 surrogate"])
def test_a_string_classad_cannot_hold_is_refused(value: str) -> None:
    with pytest.raises(AdFormatError):
        render_value(value)


def test_a_value_of_another_type_is_refused() -> None:
    with pytest.raises(AdFormatError, match="list"):
        render_value([1, 2])  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["1A", "A B", "", "A=B", 'A"', "-A", "A\n", "Ä"])
def test_an_invalid_attribute_name_is_refused(name: str) -> None:
    with pytest.raises(AdFormatError, match="invalid attribute name"):
        check_attr_name(name)
    with pytest.raises(AdFormatError, match="invalid attribute name"):
        render_ad({name: 1})


@pytest.mark.parametrize("name", ["Name", "_x", "GLIDEIN_Site", "GlideinEncParamce-1.idtoken"])
def test_valid_attribute_names_are_accepted(name: str) -> None:
    assert check_attr_name(name) == name
    assert parse_ads(render_ad({name: 1})) == [{name: 1}]


def test_ad_format_error_is_a_permanent_error() -> None:
    assert issubclass(AdFormatError, PermanentError)


def test_an_ad_is_written_one_attribute_a_line_sorted_without_regard_to_case() -> None:
    text = render_ad({"b": 1, "Name": "x", "a": True, "C": "y"})
    assert text == 'a = True\nb = 1\nC = "y"\nName = "x"\n'


def test_names_differing_only_in_case_are_refused() -> None:
    with pytest.raises(AdFormatError, match="differ only in case"):
        render_ad({"Name": "a", "name": "b"})


def test_an_empty_ad_is_refused() -> None:
    with pytest.raises(AdFormatError, match="at least one"):
        render_ad({})


def test_ads_are_separated_by_one_blank_line() -> None:
    assert render_ads([{"A": 1}, {"B": 2}, {"C": 3}]) == "A = 1\n\nB = 2\n\nC = 3\n"
    assert parse_ads(render_ads([{"A": 1}, {"B": 2}])) == [{"A": 1}, {"B": 2}]


def test_parsing_keeps_names_as_written_and_in_line_order() -> None:
    assert list(parse_ads("zeta = 1\nAlpha = 2\nmid = 3\n")[0]) == ["zeta", "Alpha", "mid"]


def test_parsing_tolerates_comments_indentation_crlf_and_extra_blank_lines() -> None:
    text = '# written by hand\r\nA = 1\r\n\tB = "x"  \r\n\n\n  \n# only a comment\n\nC = 3'
    assert parse_ads(text) == [{"A": 1, "B": "x"}, {"C": 3}]


def test_empty_text_holds_no_ads() -> None:
    assert parse_ads("") == []
    assert parse_ads("\n \n\t\n") == []


@pytest.mark.parametrize(
    ("rhs", "expected"),
    [
        ("12", 12),
        ("-12", -12),
        ("2.5", 2.5),
        ("1e3", 1000.0),
        ("TRUE", True),
        ("false", False),
        ('"text"', "text"),
        ('"ends with backslash\\"', "ends with backslash\\"),
        ('"a\\"b"', 'a"b'),
    ],
)
def test_literals_become_plain_python_values(rhs: str, expected: object) -> None:
    (attrs,) = parse_ads(f"A = {rhs}\n")
    assert attrs["A"] == expected
    assert type(attrs["A"]) is type(expected)


@pytest.mark.parametrize(
    ("rhs", "expected"),
    [
        ("Other + 1", "Other + 1"),
        ('(ReqFactoryName =?= "f")', '(ReqFactoryName is "f")'),
        ("undefined", "undefined"),
        ("{ 1,2 }", "{ 1,2 }"),
    ],
)
def test_other_expressions_are_kept_unevaluated_as_adexpr(rhs: str, expected: str) -> None:
    (attrs,) = parse_ads(f"Other = 5\nA = {rhs}\n")
    assert isinstance(attrs["A"], AdExpr)
    assert attrs["A"] == expected


def test_an_expression_written_and_read_back_is_the_same_expression() -> None:
    expr = AdExpr('(ReqFactoryName =?= "f") && (ReqGlideinName =?= "g")')
    assert _read_back(expr) == expr
    assert isinstance(_read_back(expr), AdExpr)


@pytest.mark.parametrize("text", ["", "1 2", "A ==", "A; B = 1", "1] [", "1) + (2", "A // x"])
def test_an_invalid_expression_is_refused(text: str) -> None:
    with pytest.raises(AdFormatError, match="not a valid ClassAd expression"):
        AdExpr(text)
    with pytest.raises(AdFormatError, match="not a valid ClassAd expression"):
        compile_constraint(text)


def test_an_expression_with_a_newline_in_a_string_cannot_be_written() -> None:
    with pytest.raises(AdFormatError, match="old ClassAd syntax"):
        render_value(AdExpr('A == "x\\ny"'))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("A = 1\nB = \n", "ad 1, line 2: attribute B: not a ClassAd expression"),
        ("A = 1 2\n", "ad 1, line 1: attribute A: not a ClassAd expression"),
        ('A = "x" // note\n', "ad 1, line 1: attribute A: not a ClassAd expression"),
        ("A = 1\n\nB = 1) + (2\n", "ad 2, line 3: attribute B"),
        ("A = 1\njunk\n", "ad 1, line 2: expected 'Name = value'"),
        ("A = 1\na = 2\n", "ad 1, line 2: attribute a appears twice"),
        ("1A = 3\n", "ad 1, line 1: invalid attribute name"),
        ("A = 99999999999999999999\n", "ad 1, line 1: attribute A: integer does not fit"),
        ('A = "unterminated\n', "ad 1, line 1: attribute A"),
        ('A = "trailing backslash then space\\" \n', "ad 1, line 1: classad2 could not read"),
        ("A = \x00\n", "NUL"),
        ("A = 1\n[ B = 2 ]\n", "ad 1, line 2"),
    ],
)
def test_malformed_text_is_refused_naming_the_ad_and_line(text: str, message: str) -> None:
    with pytest.raises(AdFormatError) as caught:
        parse_ads(text)
    assert message in str(caught.value)


_SAMPLE = render_ads(
    [
        {"Name": "e@g@f", "N": 3, "B": True, "S": 'q"\\', "E": AdExpr("N > 1 && B")},
        {"Name": "other", "L": -1},
    ]
)


@given(st.text())
def test_random_text_yields_ads_or_an_ad_format_error(text: str) -> None:
    try:
        ads = parse_ads(text)
    except AdFormatError:
        return
    assert all(isinstance(attrs, dict) for attrs in ads)


@given(
    st.integers(min_value=0, max_value=len(_SAMPLE)),
    st.integers(min_value=0, max_value=8),
    st.text(alphabet=st.sampled_from('=" \n\\\t#[]{}();xA0-.'), max_size=6),
)
def test_mutated_ad_text_yields_ads_or_an_ad_format_error(at: int, cut: int, insert: str) -> None:
    text = _SAMPLE[:at] + insert + _SAMPLE[at + cut :]
    try:
        ads = parse_ads(text)
    except AdFormatError:
        return
    for attrs in ads:
        for name, value in attrs.items():
            check_attr_name(name)
            assert isinstance(value, int | float | str)


@given(ad_text)
def test_a_string_literal_in_a_constraint_matches_exactly_that_string(value: str) -> None:
    constraint = compile_constraint(f"Attr =?= {string_literal(value)}")
    assert constraint.matches({"Attr": value})
    assert not constraint.matches({"Attr": value + "x"})


def test_a_quoted_value_cannot_inject_into_a_constraint() -> None:
    hostile = '" || true || "'
    constraint = compile_constraint(f"Name =?= {string_literal(hostile)}")
    assert not constraint.matches({"Name": "someone else"})
    assert constraint.matches({"Name": hostile})


def test_a_string_list_keeps_every_value_whole() -> None:
    values = ["e1@g@f", "with,comma", 'with "quote"']
    constraint = compile_constraint(f"identicalMember(ReqGlidein, {string_list_literal(values)})")
    assert [constraint.matches({"ReqGlidein": v}) for v in [*values, "with", "E1@g@f"]] == [
        True,
        True,
        True,
        False,
        False,
    ]


@pytest.mark.parametrize(
    ("constraint", "expected"),
    [
        ("ReqIdleGlideins > 3", True),
        ("ReqIdleGlideins > 30", False),
        ("reqidleglideins > 3", True),
        ("Missing > 3", False),
        ("Missing =?= undefined", True),
        ("1 / 0", False),
        ("ReqIdleGlideins", True),
        ("ReqIdleGlideins - 5", False),
        ("2.5", True),
        ('"a string"', False),
        ('stringListMember(ReqGlidein, "e1@g@f,e2@g@f")', True),
        ('eval("ReqIdle" + "Glideins") == 5', False),
        ('eval(strcat("ReqIdle", "Glideins")) == 5', True),
        ("MY.ReqIdleGlideins == 5", True),
        ("TARGET.ReqIdleGlideins == 5", False),
        ("Requirements", True),
    ],
)
def test_a_constraint_matches_when_it_evaluates_to_true(constraint: str, expected: bool) -> None:
    ad = {
        "ReqIdleGlideins": 5,
        "ReqGlidein": "e2@g@f",
        "Requirements": AdExpr("ReqIdleGlideins >= 5"),
    }
    assert matches(constraint, ad) is expected


def test_select_keeps_the_matching_ads_in_order() -> None:
    ads = [{"N": n} for n in range(6)]
    assert compile_constraint("N % 2 == 0").select(ads) == [{"N": 0}, {"N": 2}, {"N": 4}]


def test_an_int_beyond_64_bits_in_an_ad_is_refused_by_a_constraint() -> None:
    with pytest.raises(AdFormatError, match="64 bits"):
        matches("N > 1", {"N": 2**64})


def test_a_constraint_has_one_canonical_text() -> None:
    assert compile_constraint("A=?=1").text == compile_constraint("A  =?=  1").text == "A is 1"
