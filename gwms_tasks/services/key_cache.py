"""A bounded memo of unwrapped request keys, so find-work pays one RSA decryption per key.

A frontend wraps one symmetric key per factory and cycle and sends it, as the same
``ReqEncKeyCode``, in every request ad of that cycle (one per entry). Unwrapping it is an
RSA-OAEP decryption with the factory's private key, the most expensive step of validating a
request; with this memo a factory worker unwraps each ``(ReqPubKeyID, ReqEncKeyCode)`` once
instead of once per entry and cycle.

It holds the unwrapped keys of recent cycles only (least recently used ones are dropped):
they are as secret as the request values they decrypt, which the worker holds anyway. Only
successful unwraps are kept, and validation consults the memo only after the key named by
``ReqPubKeyID`` is known to be usable now, so a key past its grace window is never served
from here.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, MutableMapping

from gwms_tasks.core.crypto import SymKey

DEFAULT_MAX_KEYS = 4096
"""Enough for every frontend group of a large factory over a few cycles (a key is ~100 bytes)."""

KeyCodeId = tuple[str, str]
"""``(ReqPubKeyID, ReqEncKeyCode)``."""


class KeyCodeCache(MutableMapping[KeyCodeId, SymKey]):
    """A thread-safe least-recently-used mapping ``(ReqPubKeyID, ReqEncKeyCode) -> SymKey``.

    Args:
        max_keys: how many keys it holds at most; the least recently used go first.

    Raises:
        ValueError: ``max_keys`` is below 1.
    """

    def __init__(self, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        if max_keys < 1:
            raise ValueError(f"a key cache holds at least 1 key, got max_keys={max_keys}")
        self.max_keys = max_keys
        self._keys: OrderedDict[KeyCodeId, SymKey] = OrderedDict()
        self._lock = threading.Lock()

    def __getitem__(self, code: KeyCodeId) -> SymKey:
        with self._lock:
            sym = self._keys[code]
            self._keys.move_to_end(code)
            return sym

    def __setitem__(self, code: KeyCodeId, sym: SymKey) -> None:
        with self._lock:
            self._keys[code] = sym
            self._keys.move_to_end(code)
            while len(self._keys) > self.max_keys:
                self._keys.popitem(last=False)

    def __delitem__(self, code: KeyCodeId) -> None:
        with self._lock:
            del self._keys[code]

    def __iter__(self) -> Iterator[KeyCodeId]:
        with self._lock:
            return iter(list(self._keys))

    def __len__(self) -> int:
        with self._lock:
            return len(self._keys)

    def __repr__(self) -> str:  # never show key material
        return f"KeyCodeCache({len(self)} of at most {self.max_keys} keys)"
