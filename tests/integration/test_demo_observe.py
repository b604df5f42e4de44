"""The demo's live table (gwms_tasks/demo/observe.py) counts requests as the factory pages do."""

from __future__ import annotations

from gwms_tasks.adapters.memory_state import MemoryState
from gwms_tasks.demo.observe import client_row
from gwms_tasks.demo.setup import CLIENT
from gwms_tasks.ports import EntrySnapshot
from gwms_tasks.services.monitoring_decisions import LIVE_DECISION_LOOPS

NOW = 1_000_000.0
LOOP = 5.0
ENTRY = "site_a"


def _decided(client: str, idle: int, at: float) -> dict[str, object]:
    """A decision record as find-work stores it (the parts the table reads)."""
    submit = {"count": 0, "reason": "request_met", "requested_idle": idle, "requested_max": 10}
    return {"client": client, "work_key": f"{client}|{idle}", "at": at, "submit": submit}


def test_the_row_counts_the_current_requests_of_the_demo_client_only() -> None:
    state = MemoryState(clock=lambda: NOW)
    gone = NOW - LIVE_DECISION_LOOPS * LOOP - 1
    state.entries.put_decision(ENTRY, "a", _decided(CLIENT, 4, NOW - LOOP))
    state.entries.put_decision(ENTRY, "b", _decided(CLIENT, 2, NOW))
    state.entries.put_decision(ENTRY, "gone", _decided(CLIENT, 50, gone))
    state.entries.put_decision(ENTRY, "other", _decided("other.client", 7, NOW))
    state.entries.put_decision(ENTRY, "refused", {"client": CLIENT, "at": NOW, "rejected": "x"})
    counts = {f"client:{CLIENT}": {"idle": 1, "running": 2, "held": 3}}
    state.entries.put_snapshot(EntrySnapshot(ENTRY, NOW, counts, 6))

    row = client_row(state.entries, state.completed, ENTRY, NOW, LOOP)

    assert (row.requested, row.idle, row.running, row.held) == (6, 1, 2, 3)
    assert (row.completed, row.ok) == (0, 0)
