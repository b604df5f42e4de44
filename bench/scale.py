"""Scale benchmark: full factory cycles over N simulated entries requested by M frontends.

Usage (from the repository root)::

    .venv/bin/python bench/scale.py --entries 100 --frontends 5 [--glideins 10] [--cycles 3]
    .venv/bin/python bench/scale.py --entries 2 --frontends 2 --memory

A cycle runs, for every entry in turn, the real find-work service, then executes the submit
(and remove/release) orders it sent with the real user-side service, then runs the entry's
real monitor service. Before each cycle every frontend publishes its requests (G idle glideins
at every entry). The simulated clock moves one ``loop_delay`` per cycle. See bench/README.md.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.figures import (
    CycleFigures,
    Latency,
    cycle_lines,
    latency_lines,
    memory_lines,
)
from bench.shape import LOOP_DELAY, Shape
from bench.world import BenchWorld, memory_world, redis_world
from gwms_tasks.embedded_redis import start_redis
from gwms_tasks.services.find_work import find_work
from gwms_tasks.services.monitor import monitor_entry
from gwms_tasks.services.orders import JobActionOrder, SubmitOrder
from gwms_tasks.services.submit import execute_job_action, execute_submit


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=_positive, default=100, help="simulated entries (100)")
    parser.add_argument("--frontends", type=_positive, default=5, help="frontends (5)")
    parser.add_argument(
        "--glideins", type=_positive, default=10, help="idle glideins per frontend per entry (10)"
    )
    parser.add_argument("--cycles", type=_positive, default=3, help="factory cycles (3)")
    backend = parser.add_mutually_exclusive_group()
    backend.add_argument(
        "--memory", action="store_true", help="run on the in-memory twins instead of Redis"
    )
    backend.add_argument(
        "--redis-url",
        help="use this Redis (a scratch server; the bench creates ACL users and 'bench:' keys) "
        "instead of starting a private redis-server",
    )
    parser.add_argument(
        "--tracemalloc", action="store_true", help="also report tracemalloc's peak (slower)"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the simulated sites (1)")
    return parser.parse_args(argv)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


@contextmanager
def bench_world(args: argparse.Namespace, shape: Shape, base: Path) -> Iterator[BenchWorld]:
    """The world on the chosen backend; a private redis-server is stopped afterwards."""
    if args.memory:
        world = memory_world(shape, base, args.seed)
        yield world
        world.close()
        return
    server = None
    url = args.redis_url
    if url is None:
        server = start_redis()
        url = server.url
    try:
        world = redis_world(shape, base, url, args.seed)
        world.backend_label = f"Redis at {url}" + (" (private redis-server)" if server else "")
        try:
            yield world
        finally:
            world.close()
    finally:
        if server is not None:
            server.stop()


def run_cycle(world: BenchWorld, number: int, latencies: list[Latency] | None) -> CycleFigures:
    """One cycle (see the module docstring); fills ``latencies`` when given."""
    figures = CycleFigures(number)
    shape = world.shape
    started = time.perf_counter()
    published: dict[str, float] = {}
    for frontend in world.frontends:
        frontend.publish(world.entries, shape.glideins, 4 * shape.glideins)
        published[frontend.spec.client_name] = time.perf_counter()
    figures.publish_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for entry in world.entries:
        begin = time.perf_counter()
        result = find_work(world.deps, entry, f"bench-{number}-{entry}")
        found = time.perf_counter()
        figures.requests += result.requests
        figures.rejected += result.rejected
        figures.not_done += result.status != "done"
        done = _run_orders(world, figures)
        submitted = time.perf_counter()
        figures.glideins += monitor_entry(world.deps, entry).glideins
        monitored = time.perf_counter()
        for step, seconds in zip(
            ("find-work", "submit", "monitor"),
            (found - begin, submitted - found, monitored - submitted),
            strict=True,
        ):
            figures.per_entry[step].append(seconds)
        if latencies is not None:
            latencies.extend(Latency(t - published[client], t - begin) for client, t in done)
    figures.wall_seconds = time.perf_counter() - started
    return figures


def _run_orders(world: BenchWorld, figures: CycleFigures) -> list[tuple[str, float]]:
    """Execute the orders sent so far as the user workers would; ``(client, done at)`` of
    every submit that added glideins."""
    done = []
    for username, orders in world.dispatcher.submits.items():
        for order in orders:
            outcome = execute_submit(world.users[username], SubmitOrder.from_json(order))
            figures.orders += 1
            figures.submitted += outcome.newly_submitted
            if outcome.newly_submitted:
                done.append((str(order["tags"]["client"]), time.perf_counter()))
    for username, orders in world.dispatcher.job_actions.items():
        for order in orders:
            execute_job_action(world.users[username], JobActionOrder.from_json(order))
            figures.job_actions += 1
    world.dispatcher.submits.clear()
    world.dispatcher.job_actions.clear()
    return done


def run(args: argparse.Namespace, out: TextIO) -> list[str]:
    """Run the benchmark, writing the report to ``out`` as each cycle ends.

    Returns:
        What went wrong: requests rejected, find-work passes that did not finish, or a first
        cycle that did not submit every requested glidein ([] when all went as it should: the
        figures of a run that did not do the work would mean nothing).
    """
    problems: list[str] = []
    shape = Shape(args.entries, args.frontends, args.glideins, args.cycles)
    baseline_kib = _maxrss_kib()
    if args.tracemalloc:
        tracemalloc.start()
    base = Path(tempfile.mkdtemp(prefix="gwms-bench-"))
    try:
        with bench_world(args, shape, base) as world:
            _write(
                out,
                f"gwms-tasks scale benchmark: {shape.entries} entries x {shape.frontends} "
                f"frontends x {shape.glideins} glideins, {shape.cycles} "
                f"cycle{'s' if shape.cycles > 1 else ''} "
                f"({LOOP_DELAY} simulated s apart), on {world.backend_label}",
            )
            latencies: list[Latency] = []
            start = world.clock.now
            for number in range(1, shape.cycles + 1):
                world.clock.now = start + (number - 1) * LOOP_DELAY
                cycle = run_cycle(world, number, latencies if number == 1 else None)
                _write(out, *cycle_lines(cycle))
                problems += cycle_problems(cycle, shape)
            _write(out, *latency_lines(latencies))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    traced = tracemalloc.get_traced_memory()[1] if args.tracemalloc else None
    _write(out, *memory_lines(_maxrss_kib(), baseline_kib, traced))
    return problems


def cycle_problems(cycle: CycleFigures, shape: Shape) -> list[str]:
    """Why a cycle's figures do not measure the work they should (see :func:`run`)."""
    where = f"cycle {cycle.number}"
    problems = []
    if cycle.rejected:
        problems.append(f"{where}: {cycle.rejected} requests rejected (see the log above)")
    if cycle.not_done:
        problems.append(f"{where}: {cycle.not_done} find-work passes did not finish")
    expected = shape.requests * shape.glideins
    if cycle.number == 1 and cycle.submitted != expected:
        problems.append(f"{where}: {cycle.submitted} glideins submitted, {expected} requested")
    return problems


def _maxrss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _write(out: TextIO, *lines: str) -> None:
    out.write("".join(f"{line}\n" for line in lines))
    out.flush()


def main(argv: Sequence[str] | None = None) -> int:
    problems = run(parse_args(argv), sys.stdout)
    for problem in problems:
        print(f"bench/scale.py: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
