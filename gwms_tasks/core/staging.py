"""The content of the factory staging area (the reference §5.1), as pure data.

:func:`build_staging_area` turns a :class:`StagingSpec` into every file of the area (path ->
bytes) plus the :class:`StagingIndex` the factory takes its ``-sign``/``-descript`` arguments and
``Web*`` ad attributes from. Writing the files is the job of ``services/staging_build.py``.

Versioned names carry a short hash of the content (``description.1a2b3c4d.cfg``) where
glideinWMS inserts a time stamp. Same content gives the same name, so a rebuild of an unchanged
config is byte-identical (same ``-sign`` values, same URLs, no web cache invalidated, no clock
needed) and two factory hosts building one config serve identical trees; changed content still
always gets a new URL. A time stamp with one-second resolution can also collide; a hash cannot
in practice.

Dict files follow the reference's separator rule: ``key``, a space, a TAB, the value.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from gwms_tasks.core.lifetime import (
    DEFAULT_GRACEFUL_SHUTDOWN,
    DEFAULT_JOB_MAX_TIME,
    DEFAULT_MAX_IDLE,
    DEFAULT_MAX_TAIL,
    DEFAULT_RETIRE_TIME,
    DEFAULT_SPREAD_PERCENT,
)
from gwms_tasks.errors import ConfigError, PermanentError

CONSTS_FILE_KEY = "CONSTS_FILE"
CONDOR_VARS_FILE_KEY = "CONDOR_VARS_FILE"
UNTAR_CFG_FILE_KEY = "UNTAR_CFG_FILE"
RESERVED_CONFIG_OUT = frozenset({CONSTS_FILE_KEY, CONDOR_VARS_FILE_KEY, UNTAR_CFG_FILE_KEY})
DEFAULT_LAST_SCRIPT = "payload_startup.sh"
MAIN_INDEX_KEY = "main"
_HASH_CHARS = 8
_NAME = r"[A-Za-z0-9_+-][A-Za-z0-9_.+-]*"  # no leading dot: no ".", "..", hidden names
_NAME_RE = re.compile(_NAME)
_REL_DIR_RE = re.compile(rf"{_NAME}(/{_NAME})*")
_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_VERSIONED_RE = re.compile(r"[^/]+\.[0-9a-f]{8}(\.[^./]+)?")
_SPEC_SOURCE = "staging spec"
_SIGNATURE_LINE_RE = re.compile(r"([0-9a-f]+) [ *](.+)")
# Names of the files the builder makes itself in every source.
_RESERVED_NAMES = frozenset(
    {"constants.cfg", "condor_vars.lst", "untar.cfg", "description.cfg", "file_list.lst"}
    | {"after_file_list.lst", "signature.sha1", "signature.sha256"}
)


class SignType(enum.StrEnum):
    """Hash of signature files and of ``-sign``; sha1 is what 3.10 glideins understand."""

    SHA1 = "sha1"
    SHA256 = "sha256"

    def digest(self, data: bytes) -> str:
        """Lower-case hex digest of ``data``."""
        return hashlib.new(self.value, data).hexdigest()


class FileType(enum.StrEnum):
    """File list types our glidein_startup.sh handles."""

    REGULAR = "regular"
    NOCACHE = "nocache"  # downloaded with Cache-Control: no-cache
    EXEC = "exec"  # run as "<file> glidein_config <source id>", must exit 0
    UNTAR = "untar"  # unpacked into its untar cfg directory
    CONFIG = "config"  # a payload config snippet: kept, its path given by config_out


class FileListKey(enum.StrEnum):
    """The description key of the list a file goes in (lists are processed in §5.3 order)."""

    FILE_LIST = "file_list"
    AFTER_FILE_LIST = "after_file_list"


class VarType(enum.StrEnum):
    """condor_vars column 2: string, integer, or ClassAd expression."""

    STRING = "S"
    INTEGER = "I"
    EXPRESSION = "C"


@dataclass(frozen=True, slots=True)
class CondorVar:
    """One line of ``condor_vars.lst``; ``None`` defaults render as ``-``."""

    name: str
    var_type: VarType = VarType.STRING
    default: str | None = None
    condor_name: str = "+"  # "+" = same name
    required: bool = False
    export_to_condor: bool = True
    user_job_env: str = "-"

    def render(self) -> str:
        yes_no = {True: "Y", False: "N"}
        columns = [self.var_type.value, self.default or "-", self.condor_name]
        columns += [yes_no[self.required], yes_no[self.export_to_condor], self.user_job_env]
        return f"{self.name} \t{' '.join(columns)}\n"


_DEFAULT_SPREAD = DEFAULT_RETIRE_TIME * DEFAULT_SPREAD_PERCENT // 100
DEFAULT_CONDOR_VARS: tuple[CondorVar, ...] = (
    *(
        CondorVar(name, required=True)
        for name in ("GLIDEIN_Factory", "GLIDEIN_Name", "GLIDEIN_Entry_Name", "GLIDECLIENT_Name")
    ),
    CondorVar("GLIDEIN_CredentialIdentifier", required=True),
    CondorVar("GLIDECLIENT_Group"),
    CondorVar("GLIDEIN_Site"),
    CondorVar("GLIDEIN_Collector", condor_name="HEAD_NODES", required=True, export_to_condor=False),
    CondorVar("GLIDEIN_Max_Walltime", VarType.INTEGER),
    CondorVar("GLIDEIN_Retire_Time", VarType.INTEGER, str(DEFAULT_RETIRE_TIME)),
    CondorVar("GLIDEIN_Retire_Time_Spread", VarType.INTEGER, str(_DEFAULT_SPREAD)),
    CondorVar("GLIDEIN_Job_Max_Time", VarType.INTEGER, str(DEFAULT_JOB_MAX_TIME)),
    CondorVar("GLIDEIN_Graceful_Shutdown", VarType.INTEGER, str(DEFAULT_GRACEFUL_SHUTDOWN)),
    CondorVar("GLIDEIN_Max_Idle", VarType.INTEGER, str(DEFAULT_MAX_IDLE)),
    CondorVar("GLIDEIN_Max_Tail", VarType.INTEGER, str(DEFAULT_MAX_TAIL)),
)


@dataclass(frozen=True, slots=True)
class StagedFile:
    """A file the glidein downloads, verifies and processes.

    Attributes:
        name: the name the glidein saves it under (file list column 1).
        content: the bytes served.
        file_type: how the glidein processes it.
        list_key: which list of its source it goes in.
        cond_download: ``TRUE``, or a glidein_config key that must be ``1`` to download it.
        config_out: ``FALSE``, or the glidein_config key that receives its path.
        untar_dir: the relative directory an ``untar`` file is unpacked into.
        period: for ``exec``: seconds between re-runs by the payload (0: run once).
        prefix: prefix of the attributes a periodic script publishes.
    """

    name: str
    content: bytes
    file_type: FileType = FileType.REGULAR
    list_key: FileListKey = FileListKey.FILE_LIST
    cond_download: str = "TRUE"
    config_out: str = "FALSE"
    untar_dir: str | None = None
    period: int = 0
    prefix: str = "GLIDEIN_PS_"


@dataclass(frozen=True, slots=True)
class EntrySpec:
    """One entry's staged content: its constants (attributes) and operator files."""

    name: str
    constants: Mapping[str, str] = field(default_factory=dict)
    files: tuple[StagedFile, ...] = ()


@dataclass(frozen=True, slots=True)
class StagingSpec:
    """Everything the staging area is built from.

    Attributes:
        builtin_files: the project's glidein scripts and payloads, in list order.
        entries: the entries, each staged under ``entry_<name>/``.
        files: global operator files, after the built-in ones.
        constants: global constants written to glidein_config (entries' override them).
        condor_vars: the ``condor_vars.lst`` lines for the condor payload.
        last_script: the main file the glidein runs last (the payload).
        sign_type: hash of the signature files.
    """

    builtin_files: tuple[StagedFile, ...]
    entries: tuple[EntrySpec, ...]
    files: tuple[StagedFile, ...] = ()
    constants: Mapping[str, str] = field(default_factory=dict)
    condor_vars: tuple[CondorVar, ...] = DEFAULT_CONDOR_VARS
    last_script: str = DEFAULT_LAST_SCRIPT
    sign_type: SignType = SignType.SHA1


@dataclass(frozen=True, slots=True)
class SignedDescription:
    """A description file name and the hash of the signature file it names."""

    descript: str
    sign: str


@dataclass(frozen=True, slots=True)
class StagingIndex:
    """The factory-side ``signatures.<sign type>`` index of a built staging area."""

    sign_type: SignType
    main: SignedDescription
    entries: Mapping[str, SignedDescription]

    @property
    def file_name(self) -> str:
        return f"signatures.{self.sign_type.value}"

    def entry(self, name: str) -> SignedDescription:
        """The entry's description, or PermanentError if the area has no such entry."""
        try:
            return self.entries[name]
        except KeyError:
            raise PermanentError(f"staging area has no entry {name!r}") from None

    def web_attributes(self, entry: str, web_url: str) -> dict[str, str]:
        """The ``Web*`` attributes of the entry's glidefactory ad (the reference §1.1)."""
        entry_descript = self.entry(entry)
        return {
            "WebURL": web_url,
            "WebSignType": self.sign_type.value,
            "WebDescriptFile": self.main.descript,
            "WebDescriptSign": self.main.sign,
            "WebEntryDescriptFile": entry_descript.descript,
            "WebEntryDescriptSign": entry_descript.sign,
        }

    def render(self) -> str:
        """``<sign>  <description>  main|entry_<name>`` lines."""
        lines = [f"{self.main.sign}  {self.main.descript}  {MAIN_INDEX_KEY}\n"]
        for name, described in sorted(self.entries.items()):
            lines.append(f"{described.sign}  {described.descript}  entry_{name}\n")
        return "".join(lines)

    @classmethod
    def parse(cls, text: str, sign_type: SignType = SignType.SHA1) -> StagingIndex:
        """Read an index written by :meth:`render`.

        Raises:
            PermanentError: a malformed line, or no ``main`` line.
        """
        main: SignedDescription | None = None
        entries: dict[str, SignedDescription] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 3 or not _is_digest(parts[0], sign_type):
                raise PermanentError(f"signatures index line {number}: malformed: {line!r}")
            described = SignedDescription(descript=parts[1], sign=parts[0])
            if parts[2] == MAIN_INDEX_KEY:
                main = described
            elif parts[2].startswith("entry_"):
                entries[parts[2].removeprefix("entry_")] = described
            else:
                raise PermanentError(f"signatures index line {number}: unknown key {parts[2]!r}")
        if main is None:
            raise PermanentError("signatures index has no main line")
        return cls(sign_type=sign_type, main=main, entries=entries)


@dataclass(frozen=True, slots=True)
class StagingArea:
    """A built staging area: relative path -> content, and its index (also among the files)."""

    files: Mapping[str, bytes]
    index: StagingIndex


def versioned_name(name: str, content: bytes) -> str:
    """``name`` with a short content hash before its last dot (appended when it has none)."""
    tag = hashlib.sha256(content).hexdigest()[:_HASH_CHARS]
    stem, dot, ext = name.rpartition(".")
    return f"{stem}.{tag}.{ext}" if dot and stem else f"{name}.{tag}"


def is_versioned_name(name: str) -> bool:
    """True for a name :func:`versioned_name` could have made: immutable, cacheable forever."""
    return _VERSIONED_RE.fullmatch(name) is not None


def entry_dir(entry: str) -> str:
    """The subdirectory of the stage dir (and URL path) of an entry."""
    return f"entry_{entry}"


def build_staging_area(spec: StagingSpec) -> StagingArea:
    """Build every file of the staging area from the spec.

    Raises:
        ConfigError: the spec is inconsistent; every problem is listed.
    """
    _validate(spec)
    main = _build_source(_main_files(spec), [("last_script", spec.last_script)], spec.sign_type)
    files = dict(main.files)
    entries: dict[str, SignedDescription] = {}
    for entry in spec.entries:
        built = _build_source(_entry_files(entry), [], spec.sign_type)
        files.update({f"{entry_dir(entry.name)}/{n}": c for n, c in built.files.items()})
        entries[entry.name] = built.described
    index = StagingIndex(sign_type=spec.sign_type, main=main.described, entries=entries)
    files[index.file_name] = index.render().encode()
    return StagingArea(files=files, index=index)


def render_constants(constants: Mapping[str, str]) -> bytes:
    """A constants file: ``KEY \\tVALUE`` lines in key order."""
    return "".join(f"{key} \t{constants[key]}\n" for key in sorted(constants)).encode()


def _untar_cfg(files: tuple[StagedFile, ...]) -> bytes:
    lines = [f"{f.name} \t{f.untar_dir}\n" for f in files if f.file_type is FileType.UNTAR]
    return "".join(lines).encode()


def _main_files(spec: StagingSpec) -> tuple[StagedFile, ...]:
    operator_and_builtin = spec.builtin_files + spec.files
    condor_vars = "".join(var.render() for var in spec.condor_vars).encode()
    return (
        StagedFile("constants.cfg", render_constants(spec.constants), config_out=CONSTS_FILE_KEY),
        StagedFile("condor_vars.lst", condor_vars, config_out=CONDOR_VARS_FILE_KEY),
        StagedFile("untar.cfg", _untar_cfg(operator_and_builtin), config_out=UNTAR_CFG_FILE_KEY),
        *operator_and_builtin,
    )


def _entry_files(entry: EntrySpec) -> tuple[StagedFile, ...]:
    return (
        StagedFile("constants.cfg", render_constants(entry.constants), config_out=CONSTS_FILE_KEY),
        StagedFile("untar.cfg", _untar_cfg(entry.files), config_out=UNTAR_CFG_FILE_KEY),
        *entry.files,
    )


@dataclass(frozen=True, slots=True)
class _BuiltSource:
    files: dict[str, bytes]
    described: SignedDescription


def _list_line(staged: StagedFile, real_name: str) -> str:
    columns = [real_name, staged.file_type.value, str(staged.period), staged.prefix]
    columns += [staged.cond_download, staged.config_out]
    return f"{staged.name} \t{' '.join(columns)}\n"


def _build_source(
    staged: tuple[StagedFile, ...], extra: list[tuple[str, str]], sign_type: SignType
) -> _BuiltSource:
    """One signed source (main or an entry): its files, lists, signature and description.

    The description names the signature file and the signature lists the description, so one
    of the two names cannot hash its own final content. The signature file's name hashes
    everything it covers except the description line, and the description's content apart
    from that name; both determine the rest, so the name still changes whenever the content does.
    """
    files: dict[str, bytes] = {}
    lists: dict[FileListKey, str] = {FileListKey.FILE_LIST: ""}
    for item in staged:
        real_name = versioned_name(item.name, item.content)
        files[real_name] = item.content
        lists[item.list_key] = lists.get(item.list_key, "") + _list_line(item, real_name)
    body = ""
    for key in FileListKey:
        if key in lists:
            content = lists[key].encode()
            real_name = versioned_name(f"{key.value}.lst", content)
            files[real_name] = content
            body += f"{key.value} \t{real_name}\n"
    body += "".join(f"{key} \t{value}\n" for key, value in extra)
    signed = "".join(f"{sign_type.digest(c)}  {n}\n" for n, c in files.items())
    signature_name = versioned_name(f"signature.{sign_type.value}", (signed + body).encode())
    description = f"signature \t{signature_name}\n{body}".encode()
    description_name = versioned_name("description.cfg", description)
    signature = f"{signed}{sign_type.digest(description)}  {description_name}\n".encode()
    files[description_name] = description
    files[signature_name] = signature
    return _BuiltSource(files, SignedDescription(description_name, sign_type.digest(signature)))


def _validate(spec: StagingSpec) -> None:
    problems = _file_problems("main", spec.builtin_files + spec.files)
    problems += _constants_problems("constants", spec.constants)
    main_names = {f.name for f in spec.builtin_files + spec.files}
    if spec.last_script not in main_names:
        problems.append(f"last_script: {spec.last_script!r} is not among the main files")
    seen: set[str] = set()
    for entry in spec.entries:
        where = f"entries.{entry.name}"
        if not _NAME_RE.fullmatch(entry.name) or entry.name in seen:
            problems.append(f"{where}: bad or duplicate entry name")
        seen.add(entry.name)
        problems += _file_problems(where, entry.files)
        problems += _constants_problems(f"{where}.constants", entry.constants)
        problems += [
            f"{where}.files.{f.name}: entries have only a file_list"
            for f in entry.files
            if f.list_key is not FileListKey.FILE_LIST
        ]
    if problems:
        raise ConfigError(_SPEC_SOURCE, problems)


def _file_problems(where: str, files: tuple[StagedFile, ...]) -> list[str]:
    problems: list[str] = []
    names: set[str] = set(_RESERVED_NAMES)
    for staged in files:
        here = f"{where}.files.{staged.name}"
        if not _NAME_RE.fullmatch(staged.name) or staged.name in names:
            problems.append(f"{here}: bad, reserved or duplicate file name")
        names.add(staged.name)
        problems += [f"{here}.{problem}" for problem in _column_problems(staged)]
    return problems


def _column_problems(staged: StagedFile) -> list[str]:
    """Problems with the file list columns of one file, each starting with the column."""
    problems = [
        f"{column}: expected a glidein_config key, got {value!r}"
        for column, value in (
            ("cond_download", staged.cond_download),
            ("config_out", staged.config_out),
            ("prefix", staged.prefix),
        )
        if not _KEY_RE.fullmatch(value)
    ]
    if staged.config_out in RESERVED_CONFIG_OUT:
        problems.append(f"config_out: {staged.config_out} is reserved")
    if staged.period < 0 or (staged.period and staged.file_type is not FileType.EXEC):
        problems.append(f"period: only exec files run periodically, got {staged.period}")
    untar = staged.file_type is FileType.UNTAR
    if untar != (staged.untar_dir is not None):
        problems.append("untar_dir: required for untar files and only for them")
    elif untar and not _REL_DIR_RE.fullmatch(staged.untar_dir or ""):
        problems.append("untar_dir: expected a relative directory without '.' or '..' parts")
    return problems


def _constants_problems(where: str, constants: Mapping[str, str]) -> list[str]:
    problems = []
    for key, value in constants.items():
        if not _KEY_RE.fullmatch(key):
            problems.append(f"{where}.{key}: expected a key like [A-Za-z_][A-Za-z0-9_]*")
        if not _is_line_safe(value):
            problems.append(f"{where}.{key}: a value cannot hold a line break, NUL or surrogate")
    return problems


def _is_line_safe(value: str) -> bool:
    """A value the glidein can keep on one glidein_config line (bash: no NUL either)."""
    if any(char in value for char in "\n\r\x00"):
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _is_digest(text: str, sign_type: SignType) -> bool:
    return len(text) == len(sign_type.digest(b"")) and set(text) <= set("0123456789abcdef")


def parse_dict_file(text: str) -> dict[str, str]:
    """Read a ``key \\tvalue`` file (description, untar cfg, constants); later lines win."""
    result: dict[str, str] = {}
    for line in text.split("\n"):  # the glidein splits on newlines only
        key, _, value = line.partition(" ")
        if key and not key.startswith("#"):
            result[key] = value.removeprefix("\t")
    return result


def parse_signature(text: str) -> dict[str, str]:
    """Read a ``sha1sum -c`` style file (text or ``*`` binary mode): file name -> hex digest.

    Raises:
        PermanentError: a line is not ``<hex>  <name>``.
    """
    result: dict[str, str] = {}
    for line in text.split("\n"):
        if not line:
            continue
        match = _SIGNATURE_LINE_RE.fullmatch(line)
        if match is None:
            raise PermanentError(f"signature file: malformed line {line!r}")
        result[match[2]] = match[1]
    return result


def build_signed_source(
    staged: tuple[StagedFile, ...], sign_type: SignType = SignType.SHA1
) -> tuple[dict[str, bytes], SignedDescription]:
    """One signed source on its own: a frontend's client or group staging area (§5.1).

    The files of the source (its lists, description and signature, versioned like the
    factory's) and the description a glidein is given with ``-clientdescript``/``-clientsign``
    (or the group's). The caller validates ``staged``: unlike :func:`build_staging_area`,
    nothing here checks the names.
    """
    built = _build_source(staged, [], sign_type)
    return built.files, built.described
