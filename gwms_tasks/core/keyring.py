"""The factory key and the old key it replaced, with a grace window (the reference §2.1).

At startup a factory reuses a recent key, or rotates an older one: a new key becomes current and
the old one is still tried for a grace period, so that requests frontends encrypted for it just
before the restart are not lost. Time comes in as arguments; the file side lives in
``gwms_tasks.adapters.key_files``.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from gwms_tasks.core.crypto import CryptoError, FactoryKey

DEFAULT_GRACE_SECONDS = 900.0  # glideinWMS reuse_oldkey_onstartup_gracetime


class StartupAction(enum.StrEnum):
    """What a starting factory does with its key file."""

    GENERATE = "generate"  # there is no key: make one
    REUSE = "reuse"  # the key is recent: keep it
    ROTATE = "rotate"  # the key is old: make a new one, keep the old one for the grace period


def _check_grace(grace: float) -> None:
    if not (math.isfinite(grace) and grace >= 0):
        raise CryptoError(f"key grace period must be a finite number of seconds >= 0, got {grace}")


def startup_decision(
    key_age_seconds: float | None, grace: float = DEFAULT_GRACE_SECONDS
) -> StartupAction:
    """Decide what to do with the factory key at startup.

    Args:
        key_age_seconds: seconds since the key file was written, or None when there is none.
            A negative age (a clock set back) counts as a fresh key.
        grace: the reuse window, also the time the old key is kept after a rotation.

    Returns:
        GENERATE without a key, REUSE while its age is at most ``grace``, ROTATE after.
    """
    _check_grace(grace)
    if key_age_seconds is None:
        return StartupAction.GENERATE
    if key_age_seconds > grace:
        return StartupAction.ROTATE
    return StartupAction.REUSE


@dataclass(frozen=True, slots=True)
class Keyring:
    """The current factory key, and the previous one while its grace window lasts.

    Attributes:
        current: the key published in the ``glidefactory`` ads; always tried first.
        old: the key it replaced, or None.
        old_valid_until: epoch seconds until which ``old`` is still tried; set iff ``old`` is.
    """

    current: FactoryKey
    old: FactoryKey | None = None
    old_valid_until: float | None = None

    def __post_init__(self) -> None:
        if (self.old is None) != (self.old_valid_until is None):
            raise CryptoError("a keyring's old key and its valid-until time go together")

    def keys_at(self, now: float) -> list[FactoryKey]:
        """Keys to try at ``now``: the current one first, then the old one while it is valid."""
        keys = [self.current]
        if self._old_valid(now) and self.old is not None and self.old != self.current:
            keys.append(self.old)
        return keys

    def key_for(self, pub_key_id: str, now: float) -> FactoryKey | None:
        """The key whose ``PubKeyID`` a request names (``ReqPubKeyID``), if it is usable now."""
        for key in self.keys_at(now):
            if key.pub_key_id == pub_key_id:
                return key
        return None

    def drop_expired(self, now: float) -> Keyring:
        """This keyring without the old key once its grace window has ended."""
        if self.old is None or self._old_valid(now):
            return self
        return Keyring(self.current)

    def rotate(self, new: FactoryKey, now: float, grace: float = DEFAULT_GRACE_SECONDS) -> Keyring:
        """Make ``new`` current and keep the current key as the old one for ``grace`` seconds."""
        _check_grace(grace)
        return Keyring(new, old=self.current, old_valid_until=now + grace)

    def _old_valid(self, now: float) -> bool:
        return self.old_valid_until is not None and now < self.old_valid_until
