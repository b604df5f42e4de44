"""The staging-area content model (the reference §5.1)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gwms_tasks.core.staging import (
    CondorVar,
    EntrySpec,
    FileListKey,
    FileType,
    SignedDescription,
    SignType,
    StagedFile,
    StagingArea,
    StagingIndex,
    StagingSpec,
    VarType,
    build_staging_area,
    is_versioned_name,
    parse_dict_file,
    parse_signature,
    versioned_name,
)
from gwms_tasks.errors import ConfigError, PermanentError

ERROR_GEN = StagedFile("error_gen.sh", b"#!/bin/bash\necho gen\n", config_out="ERROR_GEN_PATH")
PAYLOAD = StagedFile("payload_startup.sh", b"#!/bin/bash\nexit 0\n")
CHECK = StagedFile(
    "validate_x.sh", b"#!/bin/bash\nexit 0\n", FileType.EXEC, FileListKey.AFTER_FILE_LIST
)


def _spec(**changes: object) -> StagingSpec:
    values: dict[str, object] = {
        "builtin_files": (ERROR_GEN, PAYLOAD, CHECK),
        "entries": (
            EntrySpec("ce1", constants={"GLIDEIN_Site": "Site A"}),
            EntrySpec("ce2", constants={"GLIDEIN_Site": "Site B"}),
        ),
        "constants": {"GLIDEIN_MIN_DISK_MB": "500"},
    }
    values.update(changes)
    return StagingSpec(**values)  # type: ignore[arg-type]


def _text(area: StagingArea, path: str) -> str:
    return area.files[path].decode()


def _source_files(area: StagingArea, prefix: str) -> dict[str, bytes]:
    """Files of one source: main (prefix "") or an entry ("entry_x/")."""
    found = {}
    for path, content in area.files.items():
        if prefix:
            if path.startswith(prefix):
                found[path.removeprefix(prefix)] = content
        elif "/" not in path and not path.startswith("signatures."):
            found[path] = content
    return found


def _description(area: StagingArea, prefix: str, descript: str) -> dict[str, str]:
    return parse_dict_file(_text(area, prefix + descript))


def test_versioned_name_puts_a_content_hash_before_the_last_dot() -> None:
    tag = hashlib.sha256(b"abc").hexdigest()[:8]
    assert versioned_name("description.cfg", b"abc") == f"description.{tag}.cfg"
    assert versioned_name("condor_bin.tar.gz", b"abc") == f"condor_bin.tar.{tag}.gz"
    assert versioned_name("grid-mapfile", b"abc") == f"grid-mapfile.{tag}"


def test_changed_content_gets_a_new_name_and_same_content_the_same_name() -> None:
    assert versioned_name("a.sh", b"one") == versioned_name("a.sh", b"one")
    assert versioned_name("a.sh", b"one") != versioned_name("a.sh", b"two")


@pytest.mark.parametrize(
    ("name", "versioned"),
    [
        ("description.0123abcd.cfg", True),
        ("grid-mapfile.0123abcd", True),
        ("signatures.sha1", False),
        ("description.cfg", False),
        ("description.0123ABCD.cfg", False),
        ("entry_ce1/description.0123abcd.cfg", False),
    ],
)
def test_versioned_names_are_recognised_for_caching(name: str, versioned: bool) -> None:
    assert is_versioned_name(name) is versioned


def test_building_the_same_spec_twice_gives_identical_areas() -> None:
    assert build_staging_area(_spec()) == build_staging_area(_spec())


def test_index_sign_is_the_hash_of_the_signature_file_the_description_names() -> None:
    area = build_staging_area(_spec())
    for prefix, described in [("", area.index.main), ("entry_ce1/", area.index.entry("ce1"))]:
        signature_name = _description(area, prefix, described.descript)["signature"]
        signature = area.files[prefix + signature_name]
        assert described.sign == hashlib.sha1(signature).hexdigest()


def test_the_signature_file_covers_every_file_of_its_source_but_itself() -> None:
    area = build_staging_area(_spec())
    for prefix, described in [("", area.index.main), ("entry_ce2/", area.index.entry("ce2"))]:
        files = _source_files(area, prefix)
        signature_name = _description(area, prefix, described.descript)["signature"]
        signed = parse_signature(files.pop(signature_name).decode())
        assert signed == {
            name: hashlib.sha1(content).hexdigest() for name, content in files.items()
        }


def test_description_lines_use_space_tab_and_name_lists_and_last_script() -> None:
    area = build_staging_area(_spec())
    text = _text(area, area.index.main.descript)
    assert all(" \t" in line for line in text.splitlines())
    description = parse_dict_file(text)
    assert set(description) == {"signature", "file_list", "after_file_list", "last_script"}
    assert description["last_script"] == "payload_startup.sh"
    entry = _description(area, "entry_ce1/", area.index.entry("ce1").descript)
    assert set(entry) == {"signature", "file_list"}


def _list_rows(area: StagingArea, prefix: str, descript: str, key: str) -> list[list[str]]:
    list_name = _description(area, prefix, descript)[key]
    return [line.split() for line in _text(area, prefix + list_name).splitlines()]


def test_file_lists_have_seven_columns_in_builder_order() -> None:
    area = build_staging_area(_spec())
    rows = _list_rows(area, "", area.index.main.descript, "file_list")
    assert all(len(row) == 7 for row in rows)
    assert [row[0] for row in rows] == [
        "constants.cfg",
        "condor_vars.lst",
        "untar.cfg",
        "error_gen.sh",
        "payload_startup.sh",
    ]
    error_gen = rows[3]
    assert error_gen[1] == versioned_name("error_gen.sh", ERROR_GEN.content)
    assert error_gen[2:] == ["regular", "0", "GLIDEIN_PS_", "TRUE", "ERROR_GEN_PATH"]
    assert [row[-1] for row in rows[:3]] == ["CONSTS_FILE", "CONDOR_VARS_FILE", "UNTAR_CFG_FILE"]
    after = _list_rows(area, "", area.index.main.descript, "after_file_list")
    assert [row[:3] for row in after] == [
        ["validate_x.sh", versioned_name("validate_x.sh", CHECK.content), "exec"]
    ]


def test_entry_constants_are_staged_as_key_space_tab_value() -> None:
    area = build_staging_area(_spec())
    rows = _list_rows(area, "entry_ce1/", area.index.entry("ce1").descript, "file_list")
    constants_name = next(row[1] for row in rows if row[0] == "constants.cfg")
    text = _text(area, f"entry_ce1/{constants_name}")
    assert text == "GLIDEIN_Site \tSite A\n"
    assert parse_dict_file(text) == {"GLIDEIN_Site": "Site A"}


def test_changing_one_entry_changes_only_that_entry() -> None:
    before = build_staging_area(_spec())
    changed = _spec(
        entries=(
            EntrySpec("ce1", constants={"GLIDEIN_Site": "Site A2"}),
            EntrySpec("ce2", constants={"GLIDEIN_Site": "Site B"}),
        )
    )
    after = build_staging_area(changed)
    assert after.index.main == before.index.main
    assert after.index.entry("ce2") == before.index.entry("ce2")
    assert after.index.entry("ce1").descript != before.index.entry("ce1").descript
    assert after.index.entry("ce1").sign != before.index.entry("ce1").sign


def test_changing_a_builtin_file_renames_it_its_list_signature_and_description() -> None:
    before = build_staging_area(_spec())
    edited = StagedFile("error_gen.sh", b"#!/bin/bash\necho v2\n", config_out="ERROR_GEN_PATH")
    after = build_staging_area(_spec(builtin_files=(edited, PAYLOAD, CHECK)))
    old = _description(before, "", before.index.main.descript)
    new = _description(after, "", after.index.main.descript)
    assert new["file_list"] != old["file_list"]
    assert new["signature"] != old["signature"]
    assert after.index.main.descript != before.index.main.descript
    assert new["after_file_list"] == old["after_file_list"]


def test_sha256_areas_sign_and_index_with_sha256() -> None:
    area = build_staging_area(_spec(sign_type=SignType.SHA256))
    assert area.index.file_name == "signatures.sha256"
    signature_name = _description(area, "", area.index.main.descript)["signature"]
    assert signature_name.endswith(".sha256")
    assert area.index.main.sign == hashlib.sha256(area.files[signature_name]).hexdigest()
    assert all(len(d) == 64 for d in parse_signature(_text(area, signature_name)).values())


def test_untar_files_are_listed_with_their_directory_in_the_untar_cfg() -> None:
    tarball = StagedFile("condor.tgz", b"tar", FileType.UNTAR, untar_dir="condor")
    area = build_staging_area(_spec(files=(tarball,)))
    rows = _list_rows(area, "", area.index.main.descript, "file_list")
    untar_cfg = next(row[1] for row in rows if row[0] == "untar.cfg")
    assert parse_dict_file(_text(area, untar_cfg)) == {"condor.tgz": "condor"}
    assert next(row[2] for row in rows if row[0] == "condor.tgz") == "untar"


def test_periodic_scripts_and_config_snippets_fill_their_columns() -> None:
    periodic = StagedFile("probe.sh", b"p", FileType.EXEC, period=300, prefix="SITE_PS_")
    snippet = StagedFile("extra.config", b"c", FileType.CONFIG, config_out="EXTRA_CONFIG")
    area = build_staging_area(_spec(files=(periodic, snippet)))
    rows = {r[0]: r for r in _list_rows(area, "", area.index.main.descript, "file_list")}
    assert rows["probe.sh"][2:] == ["exec", "300", "SITE_PS_", "TRUE", "FALSE"]
    assert rows["extra.config"][2:] == ["config", "0", "GLIDEIN_PS_", "TRUE", "EXTRA_CONFIG"]


@pytest.mark.parametrize(
    ("staged", "problem"),
    [
        (StagedFile("a.dat", b"", period=60), "period: only exec files"),
        (StagedFile("a.sh", b"", FileType.EXEC, period=-1), "period: only exec files"),
        (StagedFile("a.sh", b"", prefix="BAD PREFIX"), "prefix: expected a glidein_config key"),
        (StagedFile("a.tgz", b"", FileType.UNTAR, untar_dir="../up"), "untar_dir: expected"),
        (StagedFile("a.tgz", b"", FileType.UNTAR, untar_dir="/abs"), "untar_dir: expected"),
        (StagedFile("a.dat", b"", untar_dir="x"), "untar_dir: required for untar files"),
    ],
)
def test_file_list_columns_that_the_glidein_cannot_use_are_refused(
    staged: StagedFile, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        build_staging_area(_spec(files=(staged,)))
    assert any(problem in line for line in caught.value.problems)


def test_untar_directories_may_be_nested() -> None:
    tarball = StagedFile("t.tgz", b"t", FileType.UNTAR, untar_dir="opt/condor")
    area = build_staging_area(_spec(entries=(EntrySpec("ce1", files=(tarball,)),)))
    rows = _list_rows(area, "entry_ce1/", area.index.entry("ce1").descript, "file_list")
    untar_cfg = next(row[1] for row in rows if row[0] == "untar.cfg")
    assert parse_dict_file(_text(area, f"entry_ce1/{untar_cfg}")) == {"t.tgz": "opt/condor"}


def test_condor_vars_lines_have_seven_columns() -> None:
    variables = (CondorVar("GLIDEIN_Max_Idle", VarType.INTEGER, "1200"), CondorVar("X"))
    area = build_staging_area(_spec(condor_vars=variables))
    rows = _list_rows(area, "", area.index.main.descript, "file_list")
    vars_name = next(row[1] for row in rows if row[0] == "condor_vars.lst")
    assert _text(area, vars_name) == "GLIDEIN_Max_Idle \tI 1200 + N Y -\nX \tS - + N Y -\n"


def test_the_index_lists_main_and_every_entry_and_parses_back() -> None:
    area = build_staging_area(_spec())
    text = _text(area, "signatures.sha1")
    assert [line.split()[2] for line in text.splitlines()] == ["main", "entry_ce1", "entry_ce2"]
    assert StagingIndex.parse(text) == area.index


def test_web_attributes_name_main_and_entry_descriptions() -> None:
    index = StagingIndex(
        SignType.SHA1,
        SignedDescription("description.1.cfg", "1" * 40),
        {"ce1": SignedDescription("description.2.cfg", "2" * 40)},
    )
    assert index.web_attributes("ce1", "http://f/stage") == {
        "WebURL": "http://f/stage",
        "WebSignType": "sha1",
        "WebDescriptFile": "description.1.cfg",
        "WebDescriptSign": "1" * 40,
        "WebEntryDescriptFile": "description.2.cfg",
        "WebEntryDescriptSign": "2" * 40,
    }
    with pytest.raises(PermanentError, match="no entry 'ce9'"):
        index.entry("ce9")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc  description.1.cfg  main\n", "malformed"),
        (f"{'1' * 40}  description.1.cfg  other\n", "unknown key"),
        (f"{'1' * 40}  description.1.cfg  entry_ce1\n", "no main line"),
    ],
)
def test_a_malformed_index_is_refused(text: str, message: str) -> None:
    with pytest.raises(PermanentError, match=message):
        StagingIndex.parse(text)


def test_signature_parser_reads_text_and_binary_mode_lines_and_refuses_garbage() -> None:
    text = f"{'a' * 40}  one.sh\n{'b' * 40} *two.tgz\n"
    assert parse_signature(text) == {"one.sh": "a" * 40, "two.tgz": "b" * 40}
    with pytest.raises(PermanentError, match="malformed"):
        parse_signature("not a signature line\n")


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\x00b", "a\ud800b"])
def test_constants_the_glidein_cannot_hold_on_one_line_are_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="cannot hold a line break, NUL or surrogate"):
        build_staging_area(_spec(constants={"X": value}))


def test_an_inconsistent_spec_is_refused_with_every_problem_listed() -> None:
    duplicate = StagedFile("error_gen.sh", b"again")
    spec = _spec(
        files=(
            duplicate,
            StagedFile("constants.cfg", b"x"),
            StagedFile("t.tgz", b"x", FileType.UNTAR),
            StagedFile("o.sh", b"x", config_out="CONSTS_FILE"),
            StagedFile("../evil", b"x"),
        ),
        constants={"bad key": "1", "OK": "two\nlines"},
        entries=(EntrySpec("ce 1"), EntrySpec("ok", files=(CHECK,))),
        last_script="missing.sh",
    )
    with pytest.raises(ConfigError) as caught:
        build_staging_area(spec)
    problems = "\n".join(caught.value.problems)
    for expected in (
        "main.files.error_gen.sh: bad, reserved or duplicate",
        "main.files.constants.cfg: bad, reserved or duplicate",
        "main.files.t.tgz.untar_dir",
        "main.files.o.sh.config_out: CONSTS_FILE is reserved",
        "main.files.../evil",
        "constants.bad key",
        "constants.OK: a value cannot hold a line break",
        "last_script: 'missing.sh'",
        "entries.ce 1: bad or duplicate entry name",
        "entries.ok.files.validate_x.sh: entries have only a file_list",
    ):
        assert expected in problems


@settings(max_examples=50)
@given(
    st.binary(),
    st.dictionaries(
        st.from_regex(r"[A-Z][A-Z0-9_]{0,8}", fullmatch=True),
        st.text(st.characters(blacklist_characters="\r\n\x00", blacklist_categories=["Cs"])),
    ),
)
def test_any_operator_file_and_constants_are_signed_correctly(
    content: bytes, constants: dict[str, str]
) -> None:
    area = build_staging_area(_spec(files=(StagedFile("user.dat", content),), constants=constants))
    files = _source_files(area, "")
    signature_name = _description(area, "", area.index.main.descript)["signature"]
    signed = parse_signature(files[signature_name].decode())
    assert signed[versioned_name("user.dat", content)] == hashlib.sha1(content).hexdigest()
    constants_name = next(n for n in files if n.startswith("constants."))
    assert parse_dict_file(files[constants_name].decode()) == constants
