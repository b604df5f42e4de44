"""The request index of the Redis dashboard: the ``glideclient`` ads of one entry, found fast.

Find-work asks, for one entry, for ``ReqGlidein =?= "<entry>@<glidein>@<factory>"``. Without an
index each of these queries reads and checks every request ad of every frontend, so a cycle over
E entries costs E x (all ads): at 1,000 entries and 10 frontends, half a second per entry. With
it a query reads only the ads asking for that entry (and the few whose ``ReqGlidein`` is an
expression), then checks the full constraint on them as before, so the answer is the same.

Each writer keeps its own index under its own key prefix (the ACL rules already allow it),
written in the same MULTI/EXEC as the ads (:func:`add_to_index`, :func:`remove_from_index`):

- ``keys.dashboard_target_index(writer, type, target)``: Names of its ads whose ``ReqGlidein``
  is the string ``target``;
- ``keys.dashboard_expr_index(writer, type)``: Names of those whose ``ReqGlidein`` is an
  expression (they may ask for any entry: always read);
- ``keys.dashboard_index_marker(writer, type)``: present while the writer keeps the index. A
  writer without it (an older version, or one writing past the adapter) is read in full.

An index entry may outlive its ad (an ad re-advertised for another target, or expired): it is
only a candidate, dropped when its record is gone or no longer matches. The index hashes
expire like the ads hash. Only the commands a frontend's ACL user may run are used, so a
frontend querying its own requests takes the same path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

import redis

from gwms_tasks.adapters.redis_state import text
from gwms_tasks.core.ads import AdType
from gwms_tasks.core.classad_text import AdExpr, AdValue
from gwms_tasks.keys import Keys

INDEXED_AD_TYPES: Final = frozenset({AdType.GLIDECLIENT})
TARGET_ATTR: Final = "ReqGlidein"
INDEX_VERSION: Final = "1"
_TARGET: Final = "[A-Za-z0-9_.@-]{1,200}"
_TARGET_VALUE = re.compile(_TARGET)
# Exactly the constraint find-work sends; any other spelling takes the full scan.
_TARGET_QUERY = re.compile(rf'\s*(?i:{TARGET_ATTR})\s*=\?=\s*"({_TARGET})"\s*')


def query_target(ad_type: str, constraint: str | None) -> str | None:
    """The target a query asks for, if the index can answer it; None for a full scan."""
    if ad_type not in INDEXED_AD_TYPES or constraint is None:
        return None
    found = _TARGET_QUERY.fullmatch(constraint)
    return found.group(1) if found else None


def index_key(keys: Keys, writer: str, ad_type: str, attrs: Mapping[str, AdValue]) -> str | None:
    """The index an ad belongs to, or None when no indexed query can match it.

    ClassAd names are case-insensitive, so ``reqglidein`` counts. A string outside the target
    alphabet, a number or a missing attribute can never be identical to a target the index
    answers for.
    """
    value = next((v for k, v in attrs.items() if k.lower() == TARGET_ATTR.lower()), None)
    if isinstance(value, AdExpr):
        return keys.dashboard_expr_index(writer, ad_type)
    if isinstance(value, str) and _TARGET_VALUE.fullmatch(value):
        return keys.dashboard_target_index(writer, ad_type, value)
    return None


def _by_index(
    keys: Keys, writer: str, ad_type: str, ads: Mapping[str, Mapping[str, AdValue]]
) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, attrs in ads.items():
        key = index_key(keys, writer, ad_type, attrs)
        if key is not None:
            grouped.setdefault(key, []).append(name)
    return grouped


def add_to_index(
    pipe: redis.client.Pipeline,
    keys: Keys,
    writer: str,
    ad_type: str,
    ads: Mapping[str, Mapping[str, AdValue]],
    ttl: int,
) -> None:
    """Queue, on the advertise's MULTI pipeline, the index entries of ``ads`` (Name -> attrs)."""
    if ad_type not in INDEXED_AD_TYPES:
        return
    marker = keys.dashboard_index_marker(writer, ad_type)
    grouped = _by_index(keys, writer, ad_type, ads)
    pipe.hset(marker, "version", INDEX_VERSION)
    for key, names in grouped.items():
        pipe.hset(key, mapping=dict.fromkeys(names, ""))
    for key in (marker, *grouped):
        pipe.expire(key, ttl, nx=True)
        pipe.expire(key, ttl, gt=True)


def remove_from_index(
    pipe: redis.client.Pipeline,
    keys: Keys,
    writer: str,
    ad_type: str,
    ads: Mapping[str, Mapping[str, AdValue]],
) -> None:
    """Queue, on the invalidate's MULTI pipeline, the removal of withdrawn ads' entries."""
    if ad_type not in INDEXED_AD_TYPES:
        return
    for key, names in _by_index(keys, writer, ad_type, ads).items():
        pipe.hdel(key, *names)


def indexed_records(
    client: redis.Redis,
    keys: Keys,
    ad_type: str,
    target: str,
    found: Sequence[tuple[str, str]],
) -> list[Any]:
    """For each ``(ads hash, writer)``: its records that may ask for ``target``.

    Each item is what ``HGETALL`` of the ads hash would give, restricted to the candidates of
    the index (the whole hash for a writer without the index), or the exception Redis replied
    (a hash this client may not read). Two pipelined round trips in all.
    """
    pipe = client.pipeline(transaction=False)
    for _, writer in found:
        pipe.hget(keys.dashboard_index_marker(writer, ad_type), "version")
        pipe.hgetall(keys.dashboard_target_index(writer, ad_type, target))
        pipe.hgetall(keys.dashboard_expr_index(writer, ad_type))
    replies = pipe.execute(raise_on_error=False)
    fetch = client.pipeline(transaction=False)
    plans: list[Exception | list[str] | None] = []  # error, candidate Names, or the whole hash
    for i, (key, _) in enumerate(found):
        marker, names, expr_names = replies[3 * i : 3 * i + 3]
        error = next((r for r in (marker, names, expr_names) if isinstance(r, Exception)), None)
        if error is not None:
            plans.append(error)
        elif marker is None:
            plans.append(None)
            fetch.hgetall(key)
        else:
            wanted = sorted({text(n) for n in [*names, *expr_names]})
            plans.append(wanted)
            for name in wanted:
                fetch.hget(key, name)
    fetched = iter(fetch.execute(raise_on_error=False) if len(fetch) else [])
    return [_records(plan, fetched) for plan in plans]


def _records(plan: Exception | list[str] | None, fetched: Any) -> Any:
    if isinstance(plan, Exception):
        return plan
    if plan is None:
        return next(fetched)
    replies = [next(fetched) for _ in plan]
    error = next((reply for reply in replies if isinstance(reply, Exception)), None)
    if error is not None:
        return error
    return {name: reply for name, reply in zip(plan, replies, strict=True) if reply is not None}
