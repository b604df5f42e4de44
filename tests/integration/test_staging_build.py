"""Writing the staging area to disk: atomic publication, rebuilds, retention of old files."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gwms_tasks.core.config import load_config
from gwms_tasks.core.staging import (
    DEFAULT_LAST_SCRIPT,
    EntrySpec,
    FileListKey,
    FileType,
    StagedFile,
    StagingIndex,
    StagingSpec,
    build_staging_area,
    parse_dict_file,
)
from gwms_tasks.errors import ConfigError, PermanentError
from gwms_tasks.glidein import BUILTIN_FILES, BuiltinFile, package_dir
from gwms_tasks.services.staging_build import (
    DEFAULT_KEEP_OLD_SECONDS,
    build_staging,
    load_builtin_files,
    publish_files,
    staging_spec_from_config,
)

T0 = 1_700_000_000.0
PAYLOAD = StagedFile("payload_startup.sh", b"#!/bin/bash\nexit 0\n")


def _spec(site: str = "Site A", entries: tuple[str, ...] = ("ce1",)) -> StagingSpec:
    return StagingSpec(
        builtin_files=(PAYLOAD,),
        entries=tuple(EntrySpec(name, constants={"GLIDEIN_Site": site}) for name in entries),
    )


def _served(stage: Path) -> set[str]:
    return {
        str(p.relative_to(stage))
        for p in stage.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(stage).parts)
    }


def test_the_stage_dir_holds_exactly_the_built_area(tmp_path: Path) -> None:
    index = build_staging(_spec(), tmp_path / "stage", now=T0)
    area = build_staging_area(_spec())
    assert _served(tmp_path / "stage") == set(area.files)
    for relative, content in area.files.items():
        assert (tmp_path / "stage" / relative).read_bytes() == content
    text = (tmp_path / "stage" / "signatures.sha1").read_text()
    assert StagingIndex.parse(text) == index


@pytest.mark.parametrize("source", [".", "entry_ce1"])
def test_sha1sum_verifies_every_file_of_each_source(tmp_path: Path, source: str) -> None:
    index = build_staging(_spec(), tmp_path / "stage", now=T0)
    descript = index.main.descript if source == "." else index.entry("ce1").descript
    directory = tmp_path / "stage" / source
    signature = parse_dict_file((directory / descript).read_text())["signature"]
    done = subprocess.run(
        ["sha1sum", "-c", "--strict", signature],
        cwd=directory,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FAILED" not in done.stdout


def test_rebuilding_an_unchanged_config_touches_no_published_file(tmp_path: Path) -> None:
    stage = tmp_path / "stage"
    build_staging(_spec(), stage, now=T0)
    before = {p: (stage / p).stat().st_ino for p in _served(stage) if p != "signatures.sha1"}
    build_staging(_spec(), stage, now=T0 + 60)
    after = {p: (stage / p).stat().st_ino for p in _served(stage) if p != "signatures.sha1"}
    assert after == before


def test_old_versions_stay_served_for_the_grace_time_then_go(tmp_path: Path) -> None:
    stage = tmp_path / "stage"
    old = build_staging(_spec("Site A"), stage, now=T0)
    new = build_staging(_spec("Site B"), stage, now=T0 + 10)
    old_entry = stage / "entry_ce1" / old.entry("ce1").descript
    assert new.entry("ce1").descript != old.entry("ce1").descript
    assert old_entry.is_file(), "a glidein submitted before the rebuild still finds its files"
    build_staging(_spec("Site B"), stage, now=T0 + 10 + DEFAULT_KEEP_OLD_SECONDS - 1)
    assert old_entry.is_file()
    build_staging(_spec("Site B"), stage, now=T0 + 10 + DEFAULT_KEEP_OLD_SECONDS + 1)
    assert not old_entry.exists()
    assert _served(stage) == set(build_staging_area(_spec("Site B")).files)


def test_a_removed_entry_disappears_after_the_grace_time(tmp_path: Path) -> None:
    stage = tmp_path / "stage"
    build_staging(_spec(entries=("ce1", "ce2")), stage, now=T0)
    build_staging(_spec(entries=("ce1",)), stage, now=T0 + 1, keep_old_seconds=100)
    assert (stage / "entry_ce2").is_dir()
    index = build_staging(_spec(entries=("ce1",)), stage, now=T0 + 200, keep_old_seconds=100)
    assert not (stage / "entry_ce2").exists()
    assert set(index.entries) == {"ce1"}


def test_leftovers_of_a_killed_build_are_removed(tmp_path: Path) -> None:
    stage = tmp_path / "stage"
    leftover = stage / ".build-crashed"
    leftover.mkdir(parents=True)
    (leftover / "half.cfg").write_text("half")
    build_staging(_spec(), stage, now=T0)
    assert not leftover.exists()


def test_temp_files_of_a_killed_write_are_removed_and_files_are_world_readable(
    tmp_path: Path,
) -> None:
    stage = tmp_path / "stage"
    build_staging(_spec(), stage, now=T0)
    leftovers = [stage / ".signatures.sha1.abc123.tmp", stage / "entry_ce1" / ".x.cfg.def.tmp"]
    for leftover in leftovers:
        leftover.write_text("half")
    build_staging(_spec(), stage, now=T0 + 1)
    assert not any(leftover.exists() for leftover in leftovers)
    for relative in _served(stage):
        assert (stage / relative).stat().st_mode & 0o777 == 0o644


def test_published_files_are_rewritten_only_when_changed(tmp_path: Path) -> None:
    stage = tmp_path / "stage"
    assert publish_files(stage, {"a.cfg": b"a", "sub/b.cfg": b"b"}) == 2
    assert publish_files(stage, {"a.cfg": b"a", "sub/b.cfg": b"B"}) == 1
    assert (stage / "sub" / "b.cfg").read_bytes() == b"B"
    assert _served(stage) == {"a.cfg", "sub/b.cfg"}


def test_an_unwritable_stage_dir_is_a_permanent_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(PermanentError, match="cannot write the staging area"):
        build_staging(_spec(), blocker / "stage", now=T0)


def test_builtin_files_are_read_from_the_glidein_package_in_list_order() -> None:
    wanted = [b for b in BUILTIN_FILES if not b.name.startswith("payload_")]
    staged = load_builtin_files(wanted)
    assert [f.name for f in staged] == [b.name for b in wanted]
    error_gen = staged[0]
    assert error_gen.config_out == "ERROR_GEN_PATH"
    assert error_gen.content.startswith(b"#!/bin/bash")


def test_every_file_of_the_builtin_list_exists_in_the_package() -> None:
    staged = load_builtin_files()
    assert [f.name for f in staged] == [b.name for b in BUILTIN_FILES]
    assert DEFAULT_LAST_SCRIPT in {f.name for f in staged}


def test_builtin_files_can_come_from_elsewhere_in_the_package_under_a_flat_name() -> None:
    (staged,) = load_builtin_files([BuiltinFile("gwms_errors.py", source="errors.py")])
    assert staged.content == (package_dir() / "errors.py").read_bytes()


def test_a_missing_builtin_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nothere\.sh"):
        load_builtin_files([BuiltinFile("nothere.sh")], root=tmp_path)


CONFIG = """
factory:
  name: test_factory
  web_url: https://factory.example.org/stage
  stage_dir: /srv/gwms/stage
  work_dir: /srv/gwms/work
  log_dir: /srv/gwms/log
  client_log_base_dir: /srv/gwms/client_log
  client_proxies_base_dir: /srv/gwms/client_proxies
redis:
  state_url: redis://127.0.0.1:6379/0
  broker_url: redis://127.0.0.1:6379/1
dashboard:
  kind: redis
  url: redis://127.0.0.1:6379/2
frontends:
  fe_vo:
    identity: vo@frontend.example.org
    security_classes:
      main: vo_user
files:
  - path: checks/site_check.sh
    type: exec
  - path: data/motd.txt
entries:
  ce1:
    gatekeeper: ce.example.org ce.example.org:9619
    auth_method: grid_proxy
    attributes:
      GLIDEIN_Site: {value: Site One}
      GLIDEIN_CPUS: {value: 8}
      GLIDEIN_Collector: {value: pool.example.org, const: false}
    files:
      - path: tools.tgz
        type: untar
        untar_dir: opt/tools
        config_out: TOOLS_DIR
"""


def _write_operator_files(base: Path) -> None:
    (base / "checks").mkdir()
    (base / "checks" / "site_check.sh").write_text("#!/bin/bash\nexit 0\n")
    (base / "data").mkdir()
    (base / "data" / "motd.txt").write_text("hello\n")
    (base / "tools.tgz").write_bytes(b"not really a tarball")


def test_the_config_maps_to_operator_files_and_entry_constants(tmp_path: Path) -> None:
    _write_operator_files(tmp_path)
    spec = staging_spec_from_config(
        load_config(CONFIG, "factory.yaml"), base_dir=tmp_path, builtin_files=(PAYLOAD,)
    )
    check, motd = spec.files
    assert (check.name, check.file_type, check.list_key) == (
        "site_check.sh",
        FileType.EXEC,
        FileListKey.AFTER_FILE_LIST,
    )
    assert (motd.name, motd.content, motd.list_key) == (
        "motd.txt",
        b"hello\n",
        FileListKey.FILE_LIST,
    )
    (entry,) = spec.entries
    assert entry.constants == {"GLIDEIN_Site": "Site One", "GLIDEIN_CPUS": "8"}
    (tools,) = entry.files
    assert (tools.file_type, tools.untar_dir, tools.config_out) == (
        FileType.UNTAR,
        "opt/tools",
        "TOOLS_DIR",
    )
    index = build_staging(spec, tmp_path / "stage", now=T0)
    assert set(index.entries) == {"ce1"}


def test_an_unreadable_operator_file_is_a_config_error_naming_its_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        staging_spec_from_config(
            load_config(CONFIG, "factory.yaml"), base_dir=tmp_path, builtin_files=(PAYLOAD,)
        )
    problems = "\n".join(caught.value.problems)
    assert "files[0].path: cannot read" in problems
    assert "entries.ce1.files[0].path: cannot read" in problems
