"""The factory's beat schedule, from its config (the design card's ``beat_schedule.py``).

The schedule itself is built and applied by :mod:`gwms_tasks.schedule` (cadences documented
there); RedBeat keeps it in Redis, so it changes without restarting beat. This script shows it:

    python beat_schedule.py CONFIG            print the schedule CONFIG asks for
    python beat_schedule.py CONFIG --apply    validate CONFIG, sync RedBeat, store it for workers
                                              (what ``gwms reload`` does)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gwms_tasks.config_file import read_config
from gwms_tasks.errors import GwmsError
from gwms_tasks.schedule import ScheduleItem, desired_schedule, reload

__all__ = ["ScheduleItem", "desired_schedule", "main", "reload"]


def main(argv: list[str] | None = None) -> int:
    """Print or apply the schedule of a config file; 1 on a bad config or unreachable Redis."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--apply", action="store_true", help="sync RedBeat and store the config")
    args = parser.parse_args(argv)
    try:
        if args.apply:
            report = reload(args.config)
            print(f"{args.config}: accepted (sha256 {report.sha256[:12]})")
            for label, names in (
                ("added", report.sync.added),
                ("removed", report.sync.removed),
                ("changed", report.sync.changed),
            ):
                print(f"  {label}: {', '.join(names) or '-'}")
        else:
            for name, item in desired_schedule(read_config(args.config)).items():
                timing = f"every {item.interval:g} s, expires {item.expires:g} s"
                print(f"{name:40} {item.task:24} {timing}")
    except GwmsError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
