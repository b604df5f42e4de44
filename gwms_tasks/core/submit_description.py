"""The Condor-G submit description of a glidein submission (the reference §4.1-§4.4).

glideinWMS writes a static submit file full of ``$ENV(...)`` references and passes the
per-request values through the environment of ``condor_submit``. We submit in-process with the
htcondor bindings, so the description is built per submission with the values themselves; the
commands and job attributes are the reference's.

Safety: every value that comes from a request (tags, credential ids, project ids) is written as a
ClassAd string literal with ``classad2.quote`` and its ``$`` turned into ``$(DOLLAR)``, so that
neither ClassAd syntax nor submit-language macros can be injected. Values that become file names
or submit-command words (user and client names, paths) must match a conservative character set,
otherwise the submission is refused with a ``PermanentError``.
"""

from __future__ import annotations

import datetime
import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import classad2

from gwms_tasks.core.config_grid import GridKind as GridType
from gwms_tasks.core.escaping import SlotsLayout
from gwms_tasks.errors import ConfigError, PermanentError
from gwms_tasks.ports import GlideinTags, Submission

HALF_DAY = 12 * 60 * 60
"""Grace added to GlideinMaxWalltime before a running glidein is removed (§4.1)."""

_NAME = re.compile(r"[A-Za-z0-9_@+=-][A-Za-z0-9._@+=-]*")
_PATH = re.compile(r"[A-Za-z0-9._/@+=:~%-]+")
_ATTR_NAME = re.compile(r"\+?[A-Za-z_][A-Za-z0-9_.]*")
_UNSAFE_RAW = re.compile(r"[\n\r\x00$]")
_MULTILINE = re.compile(r"[\n\r\x00]")
_SOURCE = "entry submit settings"


UNSUPPORTED_GRID_TYPES = frozenset({GridType.EC2, GridType.GCE})
"""VM entries (user data of §4.2) are not implemented: their settings are refused."""

_RSL_COMMAND = {GridType.NORDUGRID: "nordugrid_rsl", GridType.CREAM: "cream_attributes"}


class SubmitEnv(enum.StrEnum):
    """The ``Submission.environment`` names the description reads (§4.3); others are ignored."""

    X509_USER_PROXY = "X509_USER_PROXY"
    SCITOKENS_FILE = "SCITOKENS_FILE"
    IDTOKENS_FILE = "IDTOKENS_FILE"
    PROJECT_ID = "GLIDEIN_PROJECT_ID"
    REMOTE_USERNAME = "GLIDEIN_REMOTE_USERNAME"
    GRID_RESOURCE_OPTIONS = "GRID_RESOURCE_OPTIONS"
    OVERLOAD_ENABLED = "GLIDEIN_OVERLOAD_ENABLED"


_RESERVED = frozenset(
    # Words are easier to scan here than a 30-line list literal.
    """universe grid_resource executable arguments log output error periodic_remove
    x509userproxy transfer_input_files encrypt_input_files environment owner transferoutput
    scitokensfile projectname fename glideinfactory glideinname glideinentryname glideinclient
    glideinentrysubmitfile glideinfrontendname glideincredentialidentifier glideinsecurityclass
    glideinwebbase glideinlognr glideinworkdir glideinslotslayout glideinsubmitkey
    glideinmaxwalltime glideinoverloadenabled glideinproxyurl""".split()  # noqa: SIM905
)
"""Commands and attributes the builder owns; configured submit_attrs may not override them."""


@dataclass(frozen=True, slots=True)
class SubmitAttr:
    """One configured ``submit_attrs`` line, written raw as ``name = value`` (trusted config).

    ``all_grid_types`` also writes it for nordugrid/cream entries (§4.1).
    """

    name: str
    value: str
    all_grid_types: bool = False


@dataclass(frozen=True, slots=True)
class EntrySubmitSettings:
    """The entry-level inputs of the submit description (mapped from the factory config).

    Attributes:
        grid_type: where the entry submits (ec2/gce are refused).
        gatekeeper: the CE contact (condor: ``"ce.host ce.host:9619"``; batch: ``[user@]host``).
        executable: path of glidein_startup.sh on the factory host.
        log_base_dir: ClientLogBaseDir; logs go under ``user_<u>/glidein_<g>/entry_<e>/``.
        web_url: the factory web URL (GlideinWebBase).
        startup_dir: GlideinWorkDir (where the glidein runs on the worker node).
        slots_layout: GlideinSlotsLayout.
        batch_lrms: the batch system of a ``batch`` entry (``slurm``, ``pbs``, ...).
        bosco_dir: the remote BOSCO directory of a ``batch`` entry using the glite GAHP.
        rsl: GLIDEIN_RSL, used by nordugrid (``nordugrid_rsl``) and cream (``cream_attributes``).
        submit_attrs: configured raw submit lines.
        schedd_name: the local schedd glideins are submitted to (None: the local default).
        max_walltime: GLIDEIN_Max_Walltime in seconds, when the entry defines it.
        proxy_url: GlideinProxyURL, when the entry sets one.
        entry_submit_file: GlideinEntrySubmitFile (default ``entry_<e>/job.condor``).
        cluster_size: glideins per submitted cluster (SubmitCluster).
        advertise_pilot_accounting: keep finished glideins in the queue for 12 h.

    Raises:
        ConfigError: listing every problem, when a value is unusable.
    """

    grid_type: GridType
    gatekeeper: str
    executable: str
    log_base_dir: str
    web_url: str
    startup_dir: str = "."
    slots_layout: SlotsLayout = SlotsLayout.FIXED
    batch_lrms: str | None = None
    bosco_dir: str | None = None
    rsl: str | None = None
    submit_attrs: tuple[SubmitAttr, ...] = ()
    schedd_name: str | None = None
    max_walltime: int | None = None
    proxy_url: str | None = None
    entry_submit_file: str | None = None
    cluster_size: int = 10
    advertise_pilot_accounting: bool = False

    def __post_init__(self) -> None:
        problems = _value_problems(self) + _grid_problems(self) + _attr_problems(self)
        if problems:
            raise ConfigError(_SOURCE, problems)


def _value_problems(s: EntrySubmitSettings) -> list[str]:
    problems = [
        f"{name}: expected a path of [A-Za-z0-9._/@+=:~%-], got {getattr(s, name)!r}"
        for name in ("executable", "log_base_dir")
        if not _PATH.fullmatch(getattr(s, name))
    ]
    for name in ("gatekeeper", "web_url", "startup_dir", "rsl", "proxy_url", "bosco_dir"):
        value = getattr(s, name)
        if value is not None and (not value.strip() or _UNSAFE_RAW.search(value)):
            problems.append(f"{name}: expected a value without '$' or newlines, got {value!r}")
    if s.max_walltime is not None and s.max_walltime <= 0:
        problems.append(f"max_walltime: expected seconds > 0, got {s.max_walltime}")
    if s.cluster_size < 1:
        problems.append(f"cluster_size: expected an integer >= 1, got {s.cluster_size}")
    return problems


def _grid_problems(s: EntrySubmitSettings) -> list[str]:
    if s.grid_type in UNSUPPORTED_GRID_TYPES:
        return [f"grid_type: {s.grid_type} (VM entries) is not supported by this factory"]
    if (s.grid_type is GridType.BATCH) != (s.batch_lrms is not None):
        return ["batch_lrms: required for grid_type batch and only for it"]
    if s.batch_lrms is not None and not _NAME.fullmatch(s.batch_lrms):
        return [f"batch_lrms: expected a batch system name, got {s.batch_lrms!r}"]
    if s.rsl is not None and s.grid_type not in _RSL_COMMAND:
        return [f"rsl: only nordugrid and cream entries use an rsl, not {s.grid_type}"]
    return []


def _attr_problems(s: EntrySubmitSettings) -> list[str]:
    problems = []
    for attr in s.submit_attrs:
        bare = attr.name.lower().removeprefix("+").removeprefix("my.")
        if not _ATTR_NAME.fullmatch(attr.name) or _MULTILINE.search(attr.value):
            problems.append(f"submit_attrs.{attr.name}: expected a name and a one-line value")
        elif bare in _RESERVED:
            problems.append(f"submit_attrs.{attr.name}: set by the factory, cannot be overridden")
    return problems


def literal(value: str, what: str) -> str:
    """A ClassAd string literal safe as a submit value (quoted, ``$`` as ``$(DOLLAR)``).

    Raises:
        PermanentError: the value cannot be represented (e.g. a NUL character).
    """
    try:
        quoted = str(classad2.quote(value))
    except (ValueError, TypeError) as exc:
        raise PermanentError(f"{what}: cannot quote {value!r} as a ClassAd string") from exc
    return quoted.replace("$", "$(DOLLAR)")


def format_arguments(arguments: Sequence[str], grid_type: GridType) -> str:
    """The ``arguments`` command: the given words plus ``-cluster``/``-subcluster`` (§4.4).

    condor and batch use HTCondor's plain ("old") syntax, where a literal ``"`` is written
    ``\\"``; the other grid types use the quoted ("new") syntax: the value is in double quotes,
    a literal ``"`` is doubled and a word holding ``'`` is single-quoted with its ``'`` doubled.
    ``$`` in a word becomes ``$(DOLLAR)`` so that no macro is expanded.

    Raises:
        PermanentError: an empty word or one with whitespace (escape param values first).
    """
    for word in arguments:
        if not word or any(ch.isspace() for ch in word):
            raise PermanentError(f"glidein argument {word!r} is empty or holds whitespace")
    words = [w.replace("$", "$(DOLLAR)") for w in arguments]
    words += ["-cluster", "$(Cluster)", "-subcluster", "$(Process)"]
    if not grid_type.quotes_arguments:
        return " ".join(w.replace('"', '\\"') for w in words)
    return '"' + " ".join(_new_syntax_word(w) for w in words) + '"'


def _new_syntax_word(word: str) -> str:
    word = word.replace('"', '""')
    return "'" + word.replace("'", "''") + "'" if "'" in word else word


def periodic_remove(idle_lifetime: int, max_walltime: int | None) -> str:
    """The periodic_remove expression: idle too long in the queue, or running past walltime.

    Args:
        idle_lifetime: seconds a glidein may wait idle (0 disables the idle clause).
        max_walltime: the entry's GLIDEIN_Max_Walltime; adds the running clause when set.
    """
    life = int(idle_lifetime)
    idle = (
        "((GlideinSkipIdleRemoval =?= UNDEFINED || GlideinSkipIdleRemoval =?= False)"
        f" && JobStatus == 1 && {life} > 0 && (time() - QDate) > {life})"
    )
    if max_walltime is None:
        return idle
    over = f"(time() - EnteredCurrentStatus) > GlideinMaxWalltime + {HALF_DAY}"
    return f"{idle} || (JobStatus == 2 && {over})"


def log_nr(now: float) -> str:
    """GLIDEIN_LOGNR: the UTC date ``YYYYMMDD`` of the submission."""
    return datetime.datetime.fromtimestamp(now, datetime.UTC).strftime("%Y%m%d")


def client_log_dir(settings: EntrySubmitSettings, tags: GlideinTags) -> str:
    """``<ClientLogBaseDir>/user_<u>/glidein_<g>/entry_<e>`` (§7.4).

    Raises:
        PermanentError: a name is not safe as a path component.
    """
    user = _require_name("username", tags.username)
    glidein = _require_name("glidein", tags.glidein)
    entry = _require_name("entry", tags.entry)
    return f"{settings.log_base_dir.rstrip('/')}/user_{user}/glidein_{glidein}/entry_{entry}"


def _require_name(what: str, name: str) -> str:
    if not _NAME.fullmatch(name):
        raise PermanentError(f"{what} {name!r} is not usable in a file name")
    return name


def _env_path(environment: Mapping[str, str], name: SubmitEnv) -> str | None:
    value = environment.get(name.value)
    if value and not _PATH.fullmatch(value):
        raise PermanentError(f"{name.value} {value!r} is not an acceptable file path")
    return value or None


def build_submit_description(
    settings: EntrySubmitSettings, submission: Submission, now: float
) -> dict[str, str]:
    """The submit commands of one submission (without the queue statement).

    Args:
        settings: the entry's submit settings.
        submission: tags, arguments, environment and idle lifetime of the request.
        now: submission time (epoch seconds), for GLIDEIN_LOGNR.

    Returns:
        Submit command -> value, in the order of the reference; ``+Attr`` keys are job
        attributes whose values are ClassAd expressions.

    Raises:
        PermanentError: a value that cannot be written safely, or a missing credential input.
    """
    env = submission.environment
    commands: dict[str, str] = {
        "universe": "grid",
        "grid_resource": grid_resource(settings, env),
        "executable": settings.executable,
        "transfer_executable": "True",
        "copy_to_spool": "True",
        "arguments": format_arguments(submission.arguments, settings.grid_type),
    }
    commands |= _credential_commands(settings, env)
    commands |= {
        "transfer_output_files": "",
        "when_to_transfer_output": "ON_EXIT",
        "stream_output": "False",
        "stream_error": "False",
    }
    if settings.grid_type is GridType.CONDOR:
        commands["+TransferOutput"] = '""'
    commands["job_ad_information_attrs"] = "GlideinOverloadEnabled"
    commands |= _tag_commands(settings, submission.tags, env, now)
    commands |= _configured_attrs(settings)
    commands |= _lifetime_commands(settings, submission.idle_lifetime)
    commands |= _log_commands(settings, submission.tags, now)
    return commands


def grid_resource(settings: EntrySubmitSettings, environment: Mapping[str, str]) -> str:
    """The Grid_Resource value of the entry (§4.2).

    Raises:
        PermanentError: a batch entry without a remote user name, or unsafe batch options.
    """
    if settings.grid_type is not GridType.BATCH:
        return f"{settings.grid_type} {settings.gatekeeper}"
    user_part, _, host = settings.gatekeeper.rpartition("@")
    user = environment.get(SubmitEnv.REMOTE_USERNAME.value) or user_part
    if not user:
        raise PermanentError(f"batch entry {settings.gatekeeper!r}: no remote user name")
    options = environment.get(SubmitEnv.GRID_RESOURCE_OPTIONS.value, "")
    if _UNSAFE_RAW.search(options) or '"' in options:
        raise PermanentError(f"GRID_RESOURCE_OPTIONS {options!r} is not acceptable")
    words = ["batch", str(settings.batch_lrms), *options.split()]
    if settings.bosco_dir:
        words += ["--rgahp-glite", f"~/{settings.bosco_dir}/glite"]
    return " ".join([*words, f"{_require_name('remote user name', user)}@{host}"])


def _credential_commands(settings: EntrySubmitSettings, env: Mapping[str, str]) -> dict[str, str]:
    """Proxy, SciToken, IDTOKEN and rsl commands (§4.1, §4.2, §7.1)."""
    commands: dict[str, str] = {}
    proxy = _env_path(env, SubmitEnv.X509_USER_PROXY)
    idtoken = _env_path(env, SubmitEnv.IDTOKENS_FILE)
    inputs = [idtoken] if idtoken else []
    job_env = [f"IDTOKENS_FILE={idtoken}"] if idtoken else []
    if settings.grid_type is GridType.BATCH:
        # BOSCO: the pilot proxy travels with the job and is found there by its base name.
        inputs.append(proxy or "/dev/null")
        job_env += [f"X509_USER_PROXY={proxy.rsplit('/', 1)[-1]}"] if proxy else []
    elif proxy:
        # condor_submit takes X509_USER_PROXY from its environment; we submit in-process.
        commands["x509userproxy"] = proxy
    scitoken = _env_path(env, SubmitEnv.SCITOKENS_FILE)
    if scitoken:
        commands["+SciTokensFile"] = literal(scitoken, "SCITOKENS_FILE")
    if inputs:
        commands["transfer_input_files"] = commands["encrypt_input_files"] = ",".join(inputs)
    if job_env:
        commands["environment"] = '"' + " ".join(job_env) + '"'
    if settings.grid_type in _RSL_COMMAND:
        rsl = settings.rsl or ""
        project = env.get(SubmitEnv.PROJECT_ID.value)
        if project and settings.grid_type is GridType.NORDUGRID:
            rsl += f"(project={_require_name('project id', project)})"
        if rsl:
            commands[_RSL_COMMAND[settings.grid_type]] = rsl
    return commands


def _tag_commands(
    settings: EntrySubmitSettings, tags: GlideinTags, env: Mapping[str, str], now: float
) -> dict[str, str]:
    """The ``+Glidein*`` job attributes the factory's own queries and accounting use (§4.1)."""
    strings = {
        "+GlideinFactory": tags.factory,
        "+GlideinName": tags.glidein,
        "+GlideinEntryName": tags.entry,
        "+GlideinEntrySubmitFile": settings.entry_submit_file or f"entry_{tags.entry}/job.condor",
        "+GlideinClient": tags.client,
        "+GlideinFrontendName": tags.frontend,
        "+GlideinCredentialIdentifier": tags.credential_id,
        "+GlideinSecurityClass": tags.security_class,
        "+GlideinWebBase": settings.web_url,
        "+GlideinLogNr": log_nr(now),
        "+GlideinWorkDir": settings.startup_dir,
        "+GlideinSlotsLayout": settings.slots_layout.value,
        "+GlideinSubmitKey": tags.submit_key,
        "+fename": tags.username,
    }
    if settings.proxy_url:
        strings["+GlideinProxyURL"] = settings.proxy_url
    if env.get(SubmitEnv.PROJECT_ID.value):
        strings["+ProjectName"] = env[SubmitEnv.PROJECT_ID.value]
    commands = {key: literal(value, key[1:]) for key, value in strings.items()}
    if settings.max_walltime is not None:
        commands["+GlideinMaxWalltime"] = str(settings.max_walltime)
    overload = env.get(SubmitEnv.OVERLOAD_ENABLED.value, "False").capitalize()
    if overload not in ("True", "False"):
        raise PermanentError(f"GLIDEIN_OVERLOAD_ENABLED must be True or False, got {overload!r}")
    commands["+GlideinOverloadEnabled"] = overload
    return commands


def _configured_attrs(settings: EntrySubmitSettings) -> dict[str, str]:
    nordugrid_like = settings.grid_type in _RSL_COMMAND
    return {
        attr.name: attr.value
        for attr in settings.submit_attrs
        if attr.all_grid_types or not nordugrid_like
    }


def _lifetime_commands(settings: EntrySubmitSettings, idle_lifetime: int) -> dict[str, str]:
    if idle_lifetime < 0:
        raise PermanentError(f"idle lifetime must be >= 0 seconds, got {idle_lifetime}")
    commands: dict[str, str] = {}
    if settings.advertise_pilot_accounting:
        commands["leave_in_queue"] = f"((time() - EnteredCurrentStatus) < {HALF_DAY})"
    commands["periodic_remove"] = periodic_remove(idle_lifetime, settings.max_walltime)
    commands["notification"] = "Never"
    commands["+Owner"] = "undefined"
    return commands


def _log_commands(settings: EntrySubmitSettings, tags: GlideinTags, now: float) -> dict[str, str]:
    directory = client_log_dir(settings, tags)
    client = _require_name("client name", tags.client)
    return {
        "log": f"{directory}/condor_activity_{log_nr(now)}_{client}.log",
        "output": f"{directory}/job.$(Cluster).$(Process).out",
        "error": f"{directory}/job.$(Cluster).$(Process).err",
    }


def check_submission(submission: Submission, factory: str, glidein: str, entry: str) -> None:
    """Refuse a submission whose tags would hide its glideins from this entry's queries.

    A glidein tagged for another factory, instance or entry would be invisible to the query
    that counts this entry's glideins, so every later cycle would submit again.

    Raises:
        PermanentError: the tags do not name this entry, or the count is negative.
    """
    tags = submission.tags
    if (tags.factory, tags.glidein, tags.entry) != (factory, glidein, entry):
        raise PermanentError(
            f"submission tagged for {tags.entry}@{tags.glidein}@{tags.factory}"
            f" sent to the backend of {entry}@{glidein}@{factory}"
        )
    if submission.count < 0:
        raise PermanentError(f"cannot submit a negative number of glideins ({submission.count})")
