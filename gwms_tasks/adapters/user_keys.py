"""Where user workers publish their public keys (the factory seals credentials for them).

A published key is never overwritten: every user worker connects to the state Redis with the
same credentials, so one that could replace another user's key would then receive that user's
sealed credentials. ``gwms worker-key reset`` (``remove``) is the operator's way to let a
worker whose key was regenerated on purpose publish its new one.
"""

from __future__ import annotations

import threading

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
    """Public keys in the state Redis, one string per user (``SET NX``: first one wins)."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._r = client
        self._keys = keys

    def publish(self, username: str, public_pem: bytes) -> bool:
        checked = _checked(username, public_pem)
        with redis_errors("publish a user worker key"):
            return bool(self._r.set(self._keys.user_public_key(username), checked, nx=True))

    def public_pem(self, username: str) -> bytes | None:
        with redis_errors("read a user worker key"):
            value = self._r.get(self._keys.user_public_key(username))
        if value is None:
            return None
        return value.encode() if isinstance(value, str) else bytes(value)

    def remove(self, username: str) -> bool:
        with redis_errors("remove a user worker key"):
            return bool(self._r.delete(self._keys.user_public_key(username)))


class MemoryUserKeys:
    """The in-memory twin."""

    def __init__(self) -> None:
        self._keys: dict[str, bytes] = {}
        self._mutex = threading.Lock()

    def publish(self, username: str, public_pem: bytes) -> bool:
        checked = _checked(username, public_pem)
        with self._mutex:
            if username in self._keys:
                return False
            self._keys[username] = checked
            return True

    def public_pem(self, username: str) -> bytes | None:
        with self._mutex:
            return self._keys.get(username)

    def remove(self, username: str) -> bool:
        with self._mutex:
            return self._keys.pop(username, None) is not None
