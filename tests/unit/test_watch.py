"""The change watcher: which entries a changed Name concerns, and pacing without loss."""

from __future__ import annotations

import threading

from gwms_tasks.errors import TransientError
from gwms_tasks.services.watch import WatchTargets, run_watcher, triggers_for

ENTRIES = frozenset({"ce_a", "a", "site_b"})


def test_request_names_map_to_their_entry_even_with_underscores_in_ids() -> None:
    names = [
        "cred_1_ce_a@inst@fac@fe.main",  # credential id with '_' and entry with '_'
        "x_site_b@inst@fac@fe.main",
        "x_ce_a@other@fac@fe.main",  # another instance
        "x_nope@inst@fac@fe.main",  # unknown entry
    ]
    found = triggers_for(names, "fac", "inst", ENTRIES)
    # "a" also ends "cred_1_ce_a": a harmless extra find-work, never a missed one.
    assert found.entries == {"ce_a", "site_b", "a"}
    assert not found.credentials


def test_global_ad_names_trigger_the_credentials_task_only_for_us() -> None:
    assert triggers_for(["inst@fac@fe.main"], "fac", "inst", ENTRIES).credentials
    assert not triggers_for(["inst@other@fe.main"], "fac", "inst", ENTRIES).credentials


class ScriptedFeed:
    """Returns prepared batches, advancing a fake clock; then stops the watcher."""

    def __init__(self, batches: list[tuple[float, list[str]]], stop: threading.Event) -> None:
        self.batches = batches
        self.now = 0.0
        self.stop = stop
        self.timeouts: list[float] = []

    def wait_for_changes(self, timeout: float) -> list[str]:
        self.timeouts.append(timeout)
        if not self.batches:
            self.now += timeout
            if self.now > 10:
                self.stop.set()
            return []
        at, names = self.batches.pop(0)
        if isinstance(names, Exception):
            raise names
        self.now = max(self.now, at)
        return names


def _run(batches: list[tuple[float, list[str]]]) -> list[tuple[float, str]]:
    stop = threading.Event()
    feed = ScriptedFeed(batches, stop)
    sent: list[tuple[float, str]] = []
    run_watcher(
        feed,
        lambda: WatchTargets("fac", "inst", frozenset({"e1", "e2"})),
        lambda entry: sent.append((feed.now, entry)),
        lambda: sent.append((feed.now, "credentials")),
        stop,
        spacing=0.5,
        error_pause=0.0,
        clock=lambda: feed.now,
    )
    return sent


def test_a_change_within_the_spacing_is_delayed_not_dropped() -> None:
    sent = _run([(0.0, ["c_e1@inst@fac@fe.g"]), (0.2, ["c_e1@inst@fac@fe.g"])])
    assert [entry for _, entry in sent] == ["e1", "e1"]
    assert sent[1][0] >= 0.5


def test_a_burst_is_folded_into_one_trigger_per_entry() -> None:
    burst = [(0.1 * i, ["c_e1@inst@fac@fe.g", "c_e2@inst@fac@fe.g"]) for i in range(1, 4)]
    sent = _run([(0.0, ["c_e1@inst@fac@fe.g"]), *burst])
    # Each entry: at once, then the rest of the burst folded into one, a spacing later.
    assert sorted(entry for _, entry in sent) == ["e1", "e1", "e2", "e2"]
    e2_times = [at for at, entry in sent if entry == "e2"]
    assert e2_times[1] - e2_times[0] >= 0.5


def test_feed_errors_do_not_stop_the_watcher() -> None:
    sent = _run([(0.0, TransientError("redis down")), (1.0, ["inst@fac@fe.g"])])  # type: ignore[list-item]
    assert [entry for _, entry in sent] == ["credentials"]
