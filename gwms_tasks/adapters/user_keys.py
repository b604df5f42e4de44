"""Where user workers publish their public keys (the factory seals credentials for them)."""

from __future__ import annotations

import redis

from gwms_tasks.adapters.redis_state import redis_errors
from gwms_tasks.core.crypto import CryptoError, load_rsa_public
from gwms_tasks.errors import PermanentError
from gwms_tasks.keys import Keys


def _checked(username: str, public_pem: bytes) -> bytes:
    try:
        load_rsa_public(public_pem)
    except CryptoError as exc:
        raise PermanentError(f"public key of user {username} is not an RSA key: {exc}") from exc
    return public_pem


class RedisUserKeys:
    """Public keys in the state Redis, one string per user."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._r = client
        self._keys = keys

    def publish(self, username: str, public_pem: bytes) -> None:
        with redis_errors("publish a user worker key"):
            self._r.set(self._keys.user_public_key(username), _checked(username, public_pem))

    def public_pem(self, username: str) -> bytes | None:
        with redis_errors("read a user worker key"):
            value = self._r.get(self._keys.user_public_key(username))
        if value is None:
            return None
        return value.encode() if isinstance(value, str) else bytes(value)


class MemoryUserKeys:
    """The in-memory twin."""

    def __init__(self) -> None:
        self._keys: dict[str, bytes] = {}

    def publish(self, username: str, public_pem: bytes) -> None:
        self._keys[username] = _checked(username, public_pem)

    def public_pem(self, username: str) -> bytes | None:
        return self._keys.get(username)
