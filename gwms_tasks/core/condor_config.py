"""The condor_config of a glidein's startd (the reference §5.3 step 5, §7.2).

:func:`startd_policy` builds the startd's policy expressions (START, DAEMON_SHUTDOWN, ...) with
every config macro expanded, so that they can be evaluated with the ClassAd library as they are;
:func:`render_condor_config` writes the file. Reading glidein_config into the typed settings is
the job of the worker-node edge, ``gwms_tasks/glidein/payload_condor_config.py``, which uses the
checks of this module.

One startd offers the user slots (slot type 1: ``GLIDEIN_CPUS`` fixed one-CPU slots, or one
partitionable slot) and, unless disabled, a monitoring slot (slot type 2, one extra CPU share and
1 % of the rest) that only accepts jobs with ``GLIDEIN_Is_Monitor`` or ``JOB_Is_Monitor`` true, so
that ``ps``, ``top`` or ``tail`` of a log can run beside a user job (glideinWMS'
``IS_MONITOR_VM``). User slots start jobs while the glidein has not retired and both frontend
levels' matching expressions (``GLIDECLIENT_Start``, ``GLIDECLIENT_Group_Start``) hold.

Nothing unchecked reaches the file: strings are ClassAd string literals (:func:`classad_quote`
writes exactly what ``classad2.quote`` writes, the unit tests hold the two together) with ``$``
as its octal escape, since HTCondor expands ``$(...)`` even within quotes; frontend expressions
are refused with line breaks, a trailing backslash (a line continuation), config macros or
unbalanced brackets and quotes; raw values (paths, hosts, names) with control characters or ``$``.

This module runs on the worker node too: standard library and :mod:`gwms_tasks.errors` only,
Python 3.9 compatible (hence no ``slots=True`` or ``StrEnum``).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from gwms_tasks.core.lifetime import COLLECTOR_UPDATE_GRACE, GlideinLifetime
from gwms_tasks.errors import ConfigError

SOURCE = "glidein_config"
USER_SLOT_TYPE = 1
MONITOR_SLOT_TYPE = 2
MONITOR_JOB_RETIREMENT = 120
MONITOR_RENICE = 20
LEAVE_PREEMPTING_AFTER = 300
MIN_UPDATE_INTERVAL = 270
MONITOR_START = "((TARGET.GLIDEIN_Is_Monitor =?= True) || (TARGET.JOB_Is_Monitor =?= True))"

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MACRO = re.compile(r"\$[A-Za-z_]*\(")
_HOST = r"(?:[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
_COLLECTOR = re.compile(
    rf"(?P<host>{_HOST})(?::(?P<low>\d{{1,5}})(?:-(?P<high>\d{{1,5}}))?)?(?P<sock>\?sock=[\w-]+)?"
)
_INSTANCE = re.compile(r"[A-Za-z0-9_]{1,64}")
_RAW_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f$]")
# What classad2.quote writes as a letter escape; other non-printable bytes become octal escapes.
_LETTER_ESCAPES = {char: "\\" + '\\"abtnvfr'[i] for i, char in enumerate('\\"\a\b\t\n\v\f\r')}
_CLOSERS = {")": "(", "]": "[", "}": "{"}


class SlotsLayout(str, enum.Enum):  # noqa: UP042 (StrEnum is 3.11+; see the module doc)
    """How the user CPUs are offered: one-CPU slots, or one slot cut to each job's request."""

    FIXED = "fixed"
    PARTITIONABLE = "partitionable"


@dataclass(frozen=True)
class GlideinIdentity:
    """Who the glidein is: the attributes frontends and factories count glideins by."""

    factory: str
    name: str
    entry: str
    client_name: str
    client_group: str | None
    credential_id: str
    cluster_id: int
    proc_id: int
    schedd: str | None


@dataclass(frozen=True)
class StartdSettings:
    """Everything the condor_config depends on besides lifetime and paths.

    Attributes:
        identity: the published identity.
        collector_host: the VO collector(s), comma separated, ports chosen from any range.
        ccb_address: the CCB broker(s), if the glidein needs one (``GLIDEIN_CCB``).
        start_expression: the frontend's combined matching expression.
        layout: fixed or partitionable user slots.
        cpus: CPUs offered to user jobs.
        monitor_slot: whether the monitoring slot exists.
        daemon_name: MASTER_NAME / STARTD_NAME, unique per glidein and node.
    """

    identity: GlideinIdentity
    collector_host: str
    ccb_address: str | None
    start_expression: str
    layout: SlotsLayout
    cpus: int
    monitor_slot: bool
    daemon_name: str

    @property
    def user_slots(self) -> int:
        """How many static user slots the startd has (dynamic slots come on top)."""
        return self.cpus if self.layout is SlotsLayout.FIXED else 1


@dataclass(frozen=True)
class GlideinPaths:
    """Directories of the glidein's HTCondor: its local dir, the tarball, the token dir."""

    local_dir: str
    release_dir: str
    token_dir: str


@dataclass(frozen=True)
class StartdPolicy:
    """The startd's policy expressions, config macros expanded, ready for the ClassAd library."""

    is_monitor_slot: str
    start: str
    daemon_shutdown: str
    max_job_retirement_time: str
    job_renice_increment: str


def classad_quote(value: str) -> str:
    """The ClassAd string literal of ``value``, as ``classad2.quote`` writes it.

    Raises:
        ValueError: the value holds a NUL character or a lone surrogate (as classad2 does).
    """
    if "\x00" in value:
        raise ValueError("a ClassAd string cannot hold a NUL character")
    out = ['"']
    for char in value:
        if char in _LETTER_ESCAPES:
            out.append(_LETTER_ESCAPES[char])
        elif " " <= char <= "~":
            out.append(char)
        else:
            out.extend(f"\\{byte:03o}" for byte in char.encode("utf-8"))
    out.append('"')
    return "".join(out)


def config_string(value: str) -> str:
    """A config value that HTCondor reads as the ClassAd string ``value``, ``$`` left unexpanded."""
    return classad_quote(value).replace("$", "\\044")


def combine_start_expressions(client: str | None, group: str | None) -> str:
    """The START condition of both frontend levels: each must hold; empty or ``True`` is skipped."""
    parts = [e.strip() for e in (client, group) if e and e.strip() and e.strip() != "True"]
    return " && ".join(f"({part})" for part in parts) if parts else "True"


def check_expression(key: str, expression: str) -> str | None:
    """Why ``expression`` may not go in the config as it is, or None when it may."""
    if _CONTROL.search(expression):
        return f"{key}: control characters (line breaks) are not allowed in an expression"
    if expression.rstrip().endswith("\\"):
        return f"{key}: a trailing backslash would continue the config line"
    if _MACRO.search(expression):
        return f"{key}: '$...(' is not allowed (HTCondor would expand it as a config macro)"
    problem = _bracket_problem(expression)
    return f"{key}: {problem} in {expression!r}" if problem else None


def _bracket_problem(expression: str) -> str | None:
    stack: list[str] = []
    quote: str | None = None
    escaped = False
    for char in expression:
        if quote is not None:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char in "([{":
            stack.append(char)
        elif char in _CLOSERS and (not stack or stack.pop() != _CLOSERS[char]):
            return f"unbalanced {char!r}"
    if quote is not None:
        return "unterminated quoted literal"
    return f"unclosed {stack[-1]!r}" if stack else None


def collector_host(key: str, value: str, fraction: float) -> str:
    """Comma-separated ``host[:port|:low-high][?sock=name]`` items, a port chosen in each range.

    Raises:
        ConfigError: an item does not match, or a port is out of 1..65535 or reversed.
    """
    hosts = [_collector_item(key, item, fraction) for item in re.split(r"[,\s]+", value) if item]
    if not hosts:
        raise ConfigError(SOURCE, [f"{key}: expected at least one collector"])
    return ", ".join(hosts)


def _collector_item(key: str, item: str, fraction: float) -> str:
    match = _COLLECTOR.fullmatch(item)
    low, high = (match.group("low"), match.group("high")) if match else (None, None)
    if match is None or (low is not None and not 1 <= int(low) <= int(high or low) <= 65535):
        raise ConfigError(SOURCE, [f"{key}: expected host[:port|:low-high], got {item!r}"])
    port = ""
    if low is not None:
        first, last = int(low), int(high or low)
        port = f":{first + int((last - first + 1) * fraction)}"
    return f"{match.group('host')}{port}{match.group('sock') or ''}"


def check_text(key: str, value: str) -> str | None:
    """Why ``value`` is not acceptable as a glidein attribute (control characters), or None."""
    return f"{key}: control characters are not allowed" if _CONTROL.search(value) else None


def daemon_name(cluster_id: int, proc_id: int, instance: str) -> str:
    """MASTER_NAME / STARTD_NAME of a glidein: its job id plus a per-process ``instance`` token.

    Raises:
        ConfigError: ``instance`` is not 1-64 letters, digits or ``_``.
    """
    if not _INSTANCE.fullmatch(instance):
        raise ConfigError(
            SOURCE, [f"instance: expected 1-64 letters, digits or '_', got {instance!r}"]
        )
    return f"glidein_{cluster_id}_{proc_id}_{instance}"


def _check_raw(key: str, value: str) -> None:
    """Refuse a value written unquoted into the config that could break out of its line."""
    if not value or _RAW_FORBIDDEN.search(value) or value != value.strip():
        raise ConfigError(
            SOURCE, [f"{key}: control characters and '$' are not allowed, got {value!r}"]
        )


def startd_policy(settings: StartdSettings) -> StartdPolicy:
    """START, DAEMON_SHUTDOWN and the per-slot knobs of the startd, macros expanded.

    The user slots start jobs until ``GLIDEIN_ToRetire`` when the frontend's expression holds;
    the monitoring slot only starts monitoring jobs. The startd shuts down at ``GLIDEIN_ToDie``,
    or when every user slot is idle and the glidein has either retired, never run a job for
    ``GLIDEIN_Max_Idle`` seconds, or run jobs and then been idle for ``GLIDEIN_Max_Tail``
    (glideinWMS' conditions; a partitionable slot only counts as idle while it has no dynamic
    slot, that is while ``TotalSlots`` is the number of static slots).

    Raises:
        ConfigError: the start expression cannot go in the config (:func:`check_expression`).
    """
    problem = check_expression("start_expression", settings.start_expression)
    if problem:
        raise ConfigError(SOURCE, [problem])
    is_monitor = f"(SlotTypeID =?= {MONITOR_SLOT_TYPE})" if settings.monitor_slot else "False"
    user_start = f"(time() < GLIDEIN_ToRetire) && ({settings.start_expression})"
    start = f"ifThenElse({is_monitor}, {MONITOR_START}, {user_start})"
    to_die = "(time() > GLIDEIN_ToDie)"
    idle = " && ".join(_slot_idle(settings, i) for i in range(1, settings.user_slots + 1))
    return StartdPolicy(
        is_monitor_slot=is_monitor,
        start=start if settings.monitor_slot else user_start,
        daemon_shutdown=f"(DynamicSlot =!= True) && ({to_die} || ({idle}))",
        max_job_retirement_time=(
            f"ifThenElse({is_monitor}, {MONITOR_JOB_RETIREMENT}, "
            "ifThenElse(GLIDEIN_ToDie > JobStart, GLIDEIN_ToDie - JobStart, 0))"
        ),
        job_renice_increment=f"ifThenElse({is_monitor}, {MONITOR_RENICE}, 0)",
    )


def _slot_idle(settings: StartdSettings, slot: int) -> str:
    s = f"Slot{slot}_"
    static_slots = settings.user_slots + (1 if settings.monitor_slot else 0)
    alone = (
        f"(TotalSlots =?= {static_slots}) && "
        if settings.layout is SlotsLayout.PARTITIONABLE
        else ""
    )
    never = f"(({s}JobStarts =?= 0) && ((time() - GLIDEIN_START_TIME) > GLIDEIN_Max_Idle))"
    tail = (
        f"(({s}JobStarts > 0) && "
        f"((time() - {s}ExpectedMachineGracefulDrainingCompletion) > GLIDEIN_Max_Tail))"
    )
    retired = "(time() > GLIDEIN_ToRetire)"
    return (
        f'({alone}({s}Activity =?= "Idle") && ({s}State =!= "Claimed") && '
        f"({never} || {tail} || {retired}))"
    )


def render_condor_config(
    settings: StartdSettings, lifetime: GlideinLifetime, paths: GlideinPaths
) -> str:
    """The whole condor_config text of the glidein's master and startd.

    Every value placed in the template is checked or quoted first: raw values (paths, hosts,
    names) must be free of control characters and ``$``, strings go through
    :func:`config_string`, expressions are checked by :func:`startd_policy`.

    Raises:
        ConfigError: a value cannot be written into the config safely.
    """
    raw = {
        "local_dir": paths.local_dir,
        "CONDOR_DIR": paths.release_dir,
        "token_dir": paths.token_dir,
        "collector": settings.collector_host,
        "ccb": settings.ccb_address or "-",
        "daemon_name": settings.daemon_name,
    }
    for key, value in raw.items():
        _check_raw(key, value)
    policy = startd_policy(settings)
    lines = [_TEMPLATE.format(**_template_values(settings, lifetime, paths, policy))]
    lines += [f"{key} = {value}\n" for key, value in _published(settings, lifetime, policy)]
    if settings.ccb_address:
        lines.append(f"CCB_ADDRESS = {settings.ccb_address}\n")
    if settings.monitor_slot:
        lines.append(_MONITOR_SLOT.format(monitor_type=MONITOR_SLOT_TYPE))
    return "".join(lines)


def _template_values(
    settings: StartdSettings, lifetime: GlideinLifetime, paths: GlideinPaths, policy: StartdPolicy
) -> dict[str, object]:
    partitionable = settings.layout is SlotsLayout.PARTITIONABLE
    return {
        "name": settings.daemon_name,
        "local_dir": paths.local_dir,
        "release_dir": paths.release_dir,
        "token_dir": paths.token_dir,
        "collector": settings.collector_host,
        "min_update": MIN_UPDATE_INTERVAL,
        "max_update": COLLECTOR_UPDATE_GRACE,
        "start": policy.start,
        "kill_after": LEAVE_PREEMPTING_AFTER,
        "retirement": policy.max_job_retirement_time,
        "renice": policy.job_renice_increment,
        "max_idle": lifetime.max_idle,
        "graceful": lifetime.graceful_shutdown,
        "daemon_shutdown": policy.daemon_shutdown,
        "num_cpus": settings.cpus + (1 if settings.monitor_slot else 0),
        "user_type": USER_SLOT_TYPE,
        "user_cpus": settings.cpus if partitionable else 1,
        "user_slots": settings.user_slots,
        "partitionable": partitionable,
    }


def _published(
    settings: StartdSettings, lifetime: GlideinLifetime, policy: StartdPolicy
) -> list[tuple[str, str]]:
    """The glidein's attributes and the STARTD_ATTRS line that publishes them."""
    ident = settings.identity
    strings = [
        ("GLIDEIN_Factory", ident.factory),
        ("GLIDEIN_Name", ident.name),
        ("GLIDEIN_Entry_Name", ident.entry),
        ("GLIDECLIENT_Name", ident.client_name),
        ("GLIDECLIENT_Group", ident.client_group),
        ("GLIDEIN_CredentialIdentifier", ident.credential_id),
        ("GLIDEIN_Schedd", ident.schedd),
        ("GLIDEIN_ToDie_Bound", lifetime.die_bound.value),
    ]
    lines = [(key, config_string(value)) for key, value in strings if value is not None]
    numbers = [
        ("GLIDEIN_ClusterId", ident.cluster_id),
        ("GLIDEIN_ProcId", ident.proc_id),
        ("GLIDEIN_START_TIME", lifetime.start),
        ("GLIDEIN_ToRetire", lifetime.retire_at),
        ("GLIDEIN_ToDie", lifetime.die_at),
        ("GLIDEIN_Max_Idle", lifetime.max_idle),
        ("GLIDEIN_Max_Tail", lifetime.max_tail),
        ("GLIDEIN_Job_Max_Time", lifetime.job_max_time),
        ("GLIDEIN_CPUS", settings.cpus),
    ]
    lines += [(key, str(value)) for key, value in numbers]
    lines += [
        ("IS_GLIDEIN", "True"),
        ("HAS_MONITOR_VM", str(settings.monitor_slot)),
        ("IS_MONITOR_VM", policy.is_monitor_slot),
    ]
    return [*lines, ("STARTD_ATTRS", ", ".join(key for key, _ in lines))]


# Fixed part of the config; ``{...}`` fields are filled by render_condor_config only.
_TEMPLATE = """\
# condor_config of glidein {name}, written by gwms-tasks payload_condor
LOCAL_DIR = {local_dir}
RELEASE_DIR = {release_dir}
LOCAL_CONFIG_FILE =
LOCAL_CONFIG_DIR =
LOG = $(LOCAL_DIR)/log
EXECUTE = $(LOCAL_DIR)/execute
SPOOL = $(LOCAL_DIR)/spool
LOCK = $(LOG)
SBIN = $(RELEASE_DIR)/sbin
BIN = $(RELEASE_DIR)/bin
LIB = $(RELEASE_DIR)/lib
LIBEXEC = $(RELEASE_DIR)/libexec
MASTER = $(SBIN)/condor_master
STARTD = $(SBIN)/condor_startd
STARTER = $(SBIN)/condor_starter
PROCD = $(SBIN)/condor_procd
DAEMON_LIST = MASTER, STARTD
MASTER_NAME = {name}
STARTD_NAME = {name}
STARTD_HISTORY = $(LOG)/startd_history
FILESYSTEM_DOMAIN = $(FULL_HOSTNAME)
UID_DOMAIN = $(FULL_HOSTNAME)

COLLECTOR_HOST = {collector}
UPDATE_COLLECTOR_WITH_TCP = True
STARTD_SENDS_ALIVES = True
# The lifetime arithmetic counts on ads being refreshed at most {max_update} s apart.
UPDATE_INTERVAL = $RANDOM_INTEGER({min_update}, {max_update}, 1)
MASTER_UPDATE_INTERVAL = $RANDOM_INTEGER({min_update}, {max_update}, 1)

SEC_DEFAULT_AUTHENTICATION = REQUIRED
SEC_DEFAULT_AUTHENTICATION_METHODS = IDTOKENS
SEC_DEFAULT_INTEGRITY = REQUIRED
SEC_DEFAULT_ENCRYPTION = OPTIONAL
SEC_TOKEN_DIRECTORY = {token_dir}
# The schedd that claims a slot proves itself with the claim id (match password).
SEC_ENABLE_MATCH_PASSWORD_AUTHENTICATION = True
DENY_WRITE = anonymous@*
DENY_ADMINISTRATOR = anonymous@*
DENY_DAEMON = anonymous@*
DENY_NEGOTIATOR = anonymous@*

START = {start}
RANK = 0
SUSPEND = False
CONTINUE = True
PREEMPT = False
WANT_SUSPEND = False
WANT_VACATE = False
KILL = (time() - EnteredCurrentActivity) > {kill_after}
MAXJOBRETIREMENTTIME = {retirement}
JOB_RENICE_INCREMENT = {renice}
STARTD_NOCLAIM_SHUTDOWN = {max_idle}
SHUTDOWN_GRACEFUL_TIMEOUT = {graceful}
STARTD_SLOT_ATTRS = State, Activity, JobStarts, ExpectedMachineGracefulDrainingCompletion
STARTD.DAEMON_SHUTDOWN = {daemon_shutdown}
# The master leaves with its startd (STARTD_StartTime is 0 once the startd is gone).
MASTER.DAEMON_SHUTDOWN = (STARTD_StartTime =?= 0)
MASTER_ATTRS = IS_GLIDEIN, GLIDEIN_Factory, GLIDEIN_Name, GLIDEIN_Entry_Name, GLIDEIN_ToDie

NUM_CPUS = {num_cpus}
SLOT_TYPE_{user_type} = cpus={user_cpus}
NUM_SLOTS_TYPE_{user_type} = {user_slots}
SLOT_TYPE_{user_type}_PARTITIONABLE = {partitionable}
"""

_MONITOR_SLOT = """\
SLOT_TYPE_{monitor_type} = cpus=1, memory=1%, disk=1%, swap=1%
NUM_SLOTS_TYPE_{monitor_type} = 1
SLOT_TYPE_{monitor_type}_PARTITIONABLE = False
"""
