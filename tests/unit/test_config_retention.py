"""``factory.log_retention_days``: how long the monitor keeps completed glideins' output."""

from __future__ import annotations

import pytest
import yaml

from gwms_tasks.core.config import load_config
from tests.unit.test_config import build, problems_of


def test_kept_glidein_logs_last_a_week_unless_configured() -> None:
    assert load_config(build(), "t").factory.log_retention_days == 7.0
    changed = load_config(build({"factory": {"log_retention_days": 0.5}}), "t")
    assert changed.factory.log_retention_days == 0.5


@pytest.mark.parametrize(("value", "shown"), [(0, "0"), (-3, "-3"), ("week", "'week'")])
def test_a_retention_that_is_not_a_positive_number_is_refused(value: object, shown: str) -> None:
    assert problems_of(build({"factory": {"log_retention_days": value}})) == [
        f"factory.log_retention_days: expected a number > 0, got {shown}"
    ]


def test_the_factory_wide_series_name_cannot_be_an_entry() -> None:
    data = yaml.safe_load(build())
    data["entries"]["_factory"] = data["entries"]["ce1"]
    assert problems_of(yaml.safe_dump(data)) == [
        "entries._factory: the name is reserved (the factory-wide series)"
    ]
