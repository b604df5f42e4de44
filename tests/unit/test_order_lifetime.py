"""The lifetime of submit orders: long enough for a slow worker, short of any redelivery."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gwms_tasks.celery_app import CeleryTimings
from gwms_tasks.services.orders import order_lifetime


@pytest.mark.parametrize(
    ("loop_delay", "lifetime"), [(1, 1800), (60, 1800), (360, 1800), (600, 3000)]
)
def test_an_order_lives_five_loops_and_at_least_half_an_hour(
    loop_delay: float, lifetime: float
) -> None:
    assert order_lifetime(loop_delay) == lifetime


@given(st.floats(min_value=0.001, max_value=7 * 24 * 3600.0))
def test_an_order_redelivered_after_the_visibility_timeout_has_always_expired(
    loop_delay: float,
) -> None:
    timings = CeleryTimings.for_loop_delay(loop_delay)
    assert order_lifetime(loop_delay) < timings.visibility_timeout
    assert order_lifetime(loop_delay) >= timings.task_time_limit
