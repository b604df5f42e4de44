"""In-memory twin of the CredentialIndex, and the record codec it shares with the Redis adapter.

One record per (client, credential id), the last one put winning. Records are kept encoded,
as Redis keeps them, so both adapters accept and refuse the same values and hand back fresh
objects. The index holds metadata only: a KnownCredential has no field for a content.
"""

from __future__ import annotations

import builtins
import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, fields
from typing import Any

from gwms_tasks.adapters.memory_state import dump_json, load_json
from gwms_tasks.errors import PermanentError
from gwms_tasks.ports import KnownCredential

_TEXT_FIELDS = ("client", "frontend", "security_class", "username", "credential_id", "kind")
_FIELD_NAMES = frozenset(f.name for f in fields(KnownCredential))


def record_field(client: str, credential_id: str) -> str:
    """The hash field of a credential: ``["<client>","<credential id>"]`` (JSON, unambiguous)."""
    return dump_json([client, credential_id], "a credential index field")


def check_credential(credential: KnownCredential) -> None:
    """Refuse a record that could not be listed back as it was put.

    Raises:
        PermanentError: a name is not a non-empty string, or a time is not a finite number.
    """
    for name in _TEXT_FIELDS:
        value = getattr(credential, name)
        if not isinstance(value, str) or not value:
            raise PermanentError(f"known credential: {name} must be a non-empty string: {value!r}")
    if not isinstance(credential.fingerprint, str):
        raise PermanentError(f"known credential: fingerprint must be a string: {credential!r}")
    _check_time("received_at", credential.received_at)
    if credential.expires_at is not None:
        _check_time("expires_at", credential.expires_at)


def _check_time(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PermanentError(f"known credential: {name} must be a finite number: {value!r}")


def credential_to_json(credential: KnownCredential) -> str:
    check_credential(credential)
    return dump_json(asdict(credential), f"credential {credential.credential_id!r}")


def credential_from_json(text: str, where: str) -> KnownCredential:
    """Decode one record; PermanentError naming ``where`` when it is corrupt."""
    data: Any = load_json(text, where)
    if not isinstance(data, dict) or not set(data) <= _FIELD_NAMES:
        raise PermanentError(f"{where} holds an unexpected record: {text[:200]!r}")
    try:
        credential = KnownCredential(**data)
        check_credential(credential)
    except (TypeError, PermanentError) as exc:
        raise PermanentError(f"{where} holds a bad record: {exc}") from exc
    return credential


def listed(records: Iterable[KnownCredential], frontend: str | None) -> list[KnownCredential]:
    """The records of ``frontend`` (all when None), by frontend, client and credential id."""
    chosen = (c for c in records if frontend is None or c.frontend == frontend)
    return sorted(chosen, key=lambda c: (c.frontend, c.client, c.credential_id))


def decode_all(encoded: Mapping[str, str], where: str) -> list[KnownCredential]:
    return [credential_from_json(text, f"{where} field {field}") for field, text in encoded.items()]


class MemoryCredentialIndex:
    """CredentialIndex in a dict guarded by a lock (safe to share between threads)."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._records: dict[str, str] = {}

    def put(self, credential: KnownCredential) -> None:
        encoded = credential_to_json(credential)
        with self._mutex:
            self._records[record_field(credential.client, credential.credential_id)] = encoded

    def list(self, frontend: str | None = None) -> builtins.list[KnownCredential]:
        with self._mutex:
            encoded = dict(self._records)
        return listed(decode_all(encoded, "memory credential index"), frontend)
