"""The CredentialIndex in Redis: one hash, ``[client, credential id]`` -> JSON metadata.

Key name from :meth:`gwms_tasks.keys.Keys.credentials`; the record codec is shared with the
in-memory twin (:mod:`gwms_tasks.adapters.memory_credentials`). Nothing in it is secret: the
index never receives a credential's content.
"""

from __future__ import annotations

import builtins

import redis

from gwms_tasks.adapters.memory_credentials import (
    credential_to_json,
    decode_all,
    listed,
    record_field,
)
from gwms_tasks.adapters.redis_state import redis_errors, text_hash
from gwms_tasks.keys import Keys
from gwms_tasks.ports import KnownCredential


class RedisCredentialIndex:
    """CredentialIndex in the state Redis."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._r = client
        self._key = keys.credentials()

    def put(self, credential: KnownCredential) -> None:
        field = record_field(credential.client, credential.credential_id)
        encoded = credential_to_json(credential)
        with redis_errors(f"record credential {credential.credential_id!r}"):
            self._r.hset(self._key, field, encoded)

    def list(self, frontend: str | None = None) -> builtins.list[KnownCredential]:
        with redis_errors("list the known credentials"):
            encoded = text_hash(self._r.hgetall(self._key))
        return listed(decode_all(encoded, f"Redis hash {self._key}"), frontend)
