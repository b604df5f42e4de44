"""The request index of the Redis dashboard: the ``glideclient`` ads of one entry, found fast.

Find-work asks, for one entry, for ``ReqGlidein =?= "<entry>@<glidein>@<factory>"``. Without an
index each of these queries reads and checks every request ad of every frontend, so a cycle over
E entries costs E x (all ads): at 1,000 entries and 10 frontends, half a second per entry. With
it a query reads only the ads that may ask for that entry, then checks the full constraint on
them as before, so the answer is the same.

Each writer keeps its own index under its own key prefix (its ACL rules already allow it),
written in the same MULTI/EXEC as its ads (:func:`add_to_index`, :func:`remove_from_index`):

- ``keys.dashboard_target_index(writer, type, bucket)``: ``Name -> ReqGlidein`` of the ads whose
  ``ReqGlidein`` string falls in ``bucket`` (:data:`BUCKETS` of them, by CRC-32), so that the
  index adds a few keys per writer, not one per entry, and the dashboard's key scans stay short;
- ``keys.dashboard_expr_index(writer, type)``: Names of the ads whose ``ReqGlidein`` is an
  expression (they may ask for any entry: always read);
- ``keys.dashboard_index_marker(writer, type)``: present while the writer keeps the index. A
  writer without it (an older version, or one writing past the adapter) is read in full.

An index entry may outlive its ad (re-advertised for another entry, expired, or its hash
deleted): it is only a candidate, dropped when its record is gone or does not match. The index
hashes expire like the ads hash. Only commands a frontend's ACL user may run are used.
"""

from __future__ import annotations

import re
import zlib
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
BUCKETS: Final = 32
# The constraint find-work sends, with a plain target (no escapes); other queries read all ads.
_TARGET_QUERY = re.compile(rf'\s*(?i:{TARGET_ATTR})\s*=\?=\s*"([A-Za-z0-9_.@:-]{{1,500}})"\s*')


def query_target(ad_type: str, constraint: str | None) -> str | None:
    """The target a query asks for, if the index can answer it; None for a full read."""
    if ad_type not in INDEXED_AD_TYPES or constraint is None:
        return None
    found = _TARGET_QUERY.fullmatch(constraint)
    return found.group(1) if found else None


def bucket_of(target: str) -> str:
    """The index bucket of a ``ReqGlidein`` string (stable across processes and versions)."""
    return f"{zlib.crc32(target.encode('utf-8')) % BUCKETS:02x}"


def _slot(attrs: Mapping[str, AdValue]) -> str | AdExpr | None:
    """The ad's ``ReqGlidein`` (ClassAd names ignore case) if a target query may match it.

    A number or a missing attribute is never identical to a string: such ads are not indexed.
    """
    value = next((v for k, v in attrs.items() if k.lower() == TARGET_ATTR.lower()), None)
    return value if isinstance(value, str | AdExpr) else None


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
    changes: dict[str, dict[str, str]] = {}
    for name, attrs in ads.items():
        slot = _slot(attrs)
        if isinstance(slot, AdExpr):
            changes.setdefault(keys.dashboard_expr_index(writer, ad_type), {})[name] = ""
        elif slot is not None:
            key = keys.dashboard_target_index(writer, ad_type, bucket_of(slot))
            changes.setdefault(key, {})[name] = slot
    marker = keys.dashboard_index_marker(writer, ad_type)
    pipe.hset(marker, "version", INDEX_VERSION)
    for key, fields in changes.items():
        pipe.hset(key, mapping=dict(fields.items()))
    for key in (marker, *changes):
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
    removed: dict[str, list[str]] = {}
    for name, attrs in ads.items():
        slot = _slot(attrs)
        if isinstance(slot, AdExpr):
            removed.setdefault(keys.dashboard_expr_index(writer, ad_type), []).append(name)
        elif slot is not None:
            key = keys.dashboard_target_index(writer, ad_type, bucket_of(slot))
            removed.setdefault(key, []).append(name)
    for key, names in removed.items():
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
    bucket = bucket_of(target)
    pipe = client.pipeline(transaction=False)
    for _, writer in found:
        pipe.hget(keys.dashboard_index_marker(writer, ad_type), "version")
        pipe.hgetall(keys.dashboard_target_index(writer, ad_type, bucket))
        pipe.hgetall(keys.dashboard_expr_index(writer, ad_type))
    replies = pipe.execute(raise_on_error=False)
    fetch = client.pipeline(transaction=False)
    plans: list[Exception | list[str] | None] = []  # error, candidate Names, or the whole hash
    for i, (key, _) in enumerate(found):
        marker, targets, expressions = replies[3 * i : 3 * i + 3]
        error = next((r for r in (marker, targets, expressions) if isinstance(r, Exception)), None)
        if error is not None:
            plans.append(error)
        elif marker is None:
            plans.append(None)
            fetch.hgetall(key)
        else:
            wanted = {text(n) for n, t in targets.items() if text(t) == target}
            wanted.update(text(n) for n in expressions)
            plans.append(sorted(wanted))
            for name in sorted(wanted):
                fetch.hget(key, name)
    fetched = iter(fetch.execute(raise_on_error=False) if len(fetch) else [])
    return [_records(plan, fetched) for plan in plans]


def _records(plan: Exception | list[str] | None, fetched: Any) -> Any:
    """One writer's reply, in the shape of ``HGETALL``'s (or the exception Redis gave)."""
    if isinstance(plan, Exception):
        return plan
    if plan is None:
        return next(fetched)
    replies = [next(fetched) for _ in plan]
    error = next((reply for reply in replies if isinstance(reply, Exception)), None)
    if error is not None:
        return error
    return {name: reply for name, reply in zip(plan, replies, strict=True) if reply is not None}
