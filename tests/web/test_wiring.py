"""``gwms web``'s wiring to a real runtime: the live glideins are queried at most once per TTL."""

from __future__ import annotations

from pathlib import Path

import pytest

from gwms_tasks.config_file import read_config
from gwms_tasks.core.model import Glidein
from gwms_tasks.errors import TransientError
from gwms_tasks.runtime import Runtime
from tests.builders import example_config
from tests.web.world import ENTRY, Clock, config_file
from web.wiring import GLIDEIN_TTL_CAP, GlideinCache, glidein_ttl, runtime_sources


class Backend:
    """Answers glidein queries from a script, counting them by entry."""

    def __init__(self, *answers: list[Glidein] | TransientError) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []

    def query(self, entry: str) -> list[Glidein]:
        self.asked.append(entry)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, TransientError):
            raise answer
        return answer


def test_an_entry_is_queried_again_only_after_the_ttl() -> None:
    clock, backend = Clock(0.0), Backend([])
    cache = GlideinCache(backend.query, clock)
    for _ in range(3):
        assert cache.glideins(ENTRY, ttl=30) == []
    clock.now = 29.9
    cache.glideins(ENTRY, ttl=30)
    assert backend.asked == [ENTRY]
    clock.now = 30.0
    cache.glideins(ENTRY, ttl=30)
    cache.glideins("other", ttl=30)
    assert backend.asked == [ENTRY, ENTRY, "other"]


def test_a_failed_query_is_kept_for_the_ttl_too() -> None:
    clock, backend = Clock(0.0), Backend(TransientError("schedd unreachable"), [])
    cache = GlideinCache(backend.query, clock)
    for _ in range(2):
        with pytest.raises(TransientError, match="schedd unreachable"):
            cache.glideins(ENTRY, ttl=10)
    clock.now = 10.0
    assert cache.glideins(ENTRY, ttl=10) == []
    assert backend.asked == [ENTRY, ENTRY]


@pytest.mark.parametrize(("loop_delay", "ttl"), [(60, GLIDEIN_TTL_CAP), (10, 10.0)])
def test_the_ttl_is_the_loop_delay_or_less(loop_delay: int, ttl: float) -> None:
    config = example_config()
    factory = config.factory.model_copy(update={"loop_delay": loop_delay})
    assert glidein_ttl(config.model_copy(update={"factory": factory})) == ttl


def test_page_refreshes_of_gwms_web_query_the_backend_once(redis_url: str, tmp_path: Path) -> None:
    runtime = Runtime(read_config(config_file(tmp_path / "factory.yaml", redis_url)))
    backend = Backend([])

    class Site:
        def query(self) -> list[Glidein]:
            return backend.query(ENTRY)

    runtime.backend_for = lambda entry: Site()  # type: ignore[method-assign]
    provide = runtime_sources(runtime, None)
    for _ in range(3):
        glideins = provide().glideins
        assert glideins is not None and glideins(ENTRY) == []
    assert backend.asked == [ENTRY]
