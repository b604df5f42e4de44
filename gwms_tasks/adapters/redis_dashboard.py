"""The dashboard (the collector) in Redis, with identity proven by Redis ACLs.

Each writer (the factory, each frontend) connects as its own ACL user, allowed to write only keys
under ``keys.dashboard_writer_prefix(writer)`` and to publish only on
``keys.dashboard_channel(writer)`` (see :mod:`gwms_tasks.adapters.redis_admin`). Ads of one type
live in the hash ``keys.dashboard_ads(writer, ad_type)``, Name -> JSON record (the codec of
:mod:`gwms_tasks.adapters.memory_dashboard`). A reader learns who wrote an ad from the *key* it
was found under, so the identity is the ACL user and never something the ad says; it is stamped
into the attributes as ``AuthenticatedIdentity`` (the collector's name for it), replacing any
value the ad carried.

Ads expire like collector ads: each record holds its expiry and readers drop expired ones; the
hash itself expires with its newest ad, so a writer that goes away leaves nothing behind.

Request ads are also indexed by the entry they ask for, so that find-work's query of one entry
does not read every frontend's every request (:mod:`.redis_dashboard_index`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Collection, Sequence

import redis

from gwms_tasks.adapters.memory_dashboard import (
    DEFAULT_LIFETIME,
    REQUEST_AD_TYPES,
    Clock,
    Matcher,
    ad_record,
    change_message,
    changed_names,
    check_segment,
    in_order,
    live_ad,
    matcher,
    prepared_ads,
    selected,
    unique,
)
from gwms_tasks.adapters.redis_dashboard_index import (
    add_to_index,
    indexed_records,
    query_target,
    remove_from_index,
)
from gwms_tasks.adapters.redis_state import redis_errors, text, text_hash
from gwms_tasks.errors import PermanentError
from gwms_tasks.keys import Keys
from gwms_tasks.ports import AdAttrs, AuthenticatedAd

_LOG = logging.getLogger(__name__)
_SCAN_COUNT = 1000


class RedisDashboard:
    """Dashboard of one writer (its ACL user name) on a Redis shared by all writers.

    Args:
        client: a redis-py client authenticated as ``writer`` (the factory may use an admin one).
        keys: the key names.
        writer: this client's identity: its ACL user name, or the factory's writer name.
        lifetime: seconds an advertised ad lives unless advertised again.
        clock: epoch seconds, for ad expiry.
    """

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        writer: str,
        lifetime: float = DEFAULT_LIFETIME,
        clock: Clock = time.time,
    ) -> None:
        self._r = client
        self._keys = keys
        self.writer = check_segment(writer, "dashboard writer")
        self._lifetime = lifetime
        self._clock = clock
        # Every ads key is this head + writer + ":" + ad type.
        self._writer_head = keys.dashboard_ads_pattern("type").partition("*")[0]

    def advertise(self, ad_type: str, ads: Sequence[AdAttrs]) -> None:
        """Store (or replace, by Name) this writer's ads and announce their Names.

        Raises:
            PermanentError: a malformed ad, or Redis refused (writing outside this ACL user's
                prefix).
            TransientError: Redis unavailable.
        """
        prepared = prepared_ads(ad_type, ads)
        if not prepared:
            return
        expires = self._clock() + self._lifetime
        records = {name: ad_record(attrs, expires) for name, attrs in prepared.items()}
        key = self._keys.dashboard_ads(self.writer, ad_type)
        ttl = max(1, math.ceil(self._lifetime))
        with redis_errors(f"advertise {ad_type} ads as {self.writer!r} into {key}"):
            pipe = self._r.pipeline(transaction=True)
            pipe.hset(key, mapping=dict(records.items()))
            pipe.expire(key, ttl, nx=True)  # a new hash
            pipe.expire(key, ttl, gt=True)  # never shorten the life of longer-lived ads
            add_to_index(pipe, self._keys, self.writer, ad_type, prepared, ttl)
            pipe.publish(
                self._keys.dashboard_channel(self.writer), change_message(ad_type, records)
            )
            pipe.execute()

    def invalidate(self, ad_type: str, constraint: str) -> int:
        """Withdraw this writer's live ads of a type that match ``constraint``; return how many."""
        check_segment(ad_type, "ad type")
        match = matcher(constraint)
        key = self._keys.dashboard_ads(self.writer, ad_type)
        where = f"{self.writer}/{ad_type}"
        withdrawn: list[str] = []

        def attempt(pipe: redis.client.Pipeline) -> None:
            records, now = text_hash(pipe.hgetall(key)), self._clock()
            live = {
                name: live_ad(record, self.writer, now, where) for name, record in records.items()
            }
            withdrawn[:] = [n for n, ad in live.items() if ad and selected([ad], match, where)]
            pipe.multi()
            if withdrawn:
                pipe.hdel(key, *withdrawn)
                chosen = set(withdrawn)
                gone = {name: ad.attrs for name, ad in live.items() if ad and name in chosen}
                remove_from_index(pipe, self._keys, self.writer, ad_type, gone)
                pipe.publish(
                    self._keys.dashboard_channel(self.writer), change_message(ad_type, withdrawn)
                )

        with redis_errors(f"invalidate {ad_type} ads of {self.writer!r} in {key}"):
            self._r.transaction(attempt, key)
        return len(withdrawn)

    def query(self, ad_type: str, constraint: str | None = None) -> list[AuthenticatedAd]:
        """Live ads of a type from every writer this client may read, matching ``constraint``.

        Hashes this client's ACL user may not read are skipped (a frontend reads the factory's
        ads, not other frontends').
        """
        check_segment(ad_type, "ad type")
        match = matcher(constraint)
        pattern = self._keys.dashboard_ads_pattern(ad_type)
        with redis_errors(f"query {ad_type} ads"):
            found = sorted(text(k) for k in self._r.scan_iter(match=pattern, count=_SCAN_COUNT))
            keys = [(key, writer) for key in found if (writer := self._writer_of(key, ad_type))]
            target = query_target(ad_type, constraint)
            if target is not None:  # find-work's query: read only that entry's requests
                replies = indexed_records(self._r, self._keys, ad_type, target, keys)
            else:
                pipe = self._r.pipeline(transaction=False)
                for key, _ in keys:
                    pipe.hgetall(key)
                replies = pipe.execute(raise_on_error=False)
            now = self._clock()
            ads: list[AuthenticatedAd] = []
            for (key, writer), reply in zip(keys, replies, strict=True):
                ads.extend(self._readable_ads(key, writer, reply, now, match))
        return in_order(ads)

    def _readable_ads(
        self, key: str, writer: str, reply: object, now: float, match: Matcher
    ) -> list[AuthenticatedAd]:
        if isinstance(reply, redis.exceptions.NoPermissionError):
            _LOG.debug("dashboard key %s is not readable by this ACL user", key)
            return []
        if isinstance(reply, Exception):
            raise reply
        where = f"{writer}/{key}"
        ads = (live_ad(record, writer, now, where) for record in text_hash(reply).values())
        return selected([ad for ad in ads if ad is not None], match, where)

    def _writer_of(self, key: str, ad_type: str) -> str | None:
        """The writer a key belongs to, or None for a key outside the layout (skipped)."""
        writer = key[len(self._writer_head) : -len(ad_type) - 1]
        try:
            check_segment(writer, "dashboard writer")
        except PermanentError:
            return None
        return writer if key == self._keys.dashboard_ads(writer, ad_type) else None


class RedisChangeFeed:
    """ChangeFeed over the writers' change channels (subscribed from construction on).

    One feed serves one thread (a redis-py PubSub is not thread-safe). A feed connecting as an
    ACL user needs ``&<prefix>:dash:changes:*`` and ``+psubscribe`` (the factory's user).

    Args:
        client: a redis-py client allowed to ``PSUBSCRIBE`` the change channel pattern.
        keys: the key names.
        ad_types: which ad types to report (request ads by default; None: all).
    """

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        ad_types: Collection[str] | None = REQUEST_AD_TYPES,
    ) -> None:
        self._ad_types = None if ad_types is None else frozenset(ad_types)
        # redis-py leaves Redis.pubsub unannotated.
        self._pubsub: redis.client.PubSub = client.pubsub(  # type: ignore[no-untyped-call]
            ignore_subscribe_messages=True
        )
        self._pattern = keys.dashboard_channel_pattern()
        with redis_errors(f"subscribe to {self._pattern}"):
            self._pubsub.psubscribe(self._pattern)

    def wait_for_changes(self, timeout: float) -> list[str]:
        """Block up to ``timeout`` seconds for a change; return every Name announced so far."""
        deadline = time.monotonic() + max(0.0, timeout)
        names: list[str] = []
        with redis_errors(f"wait for changes on {self._pattern}"):
            while not names:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                names.extend(self._names(self._pubsub.get_message(timeout=remaining)))
            while (message := self._pubsub.get_message(timeout=0)) is not None:
                names.extend(self._names(message))
        return unique(names)

    def close(self) -> None:
        with redis_errors(f"unsubscribe from {self._pattern}"):
            self._pubsub.close()

    def _names(self, message: object) -> list[str]:
        if not isinstance(message, dict) or message.get("type") != "pmessage":
            return []
        return changed_names(text(message["data"]), self._ad_types)
