"""``python -m gwms_tasks.cli``: the ``gwms`` command (used to spawn helper processes)."""

from gwms_tasks.cli import main

main()
