"""``python -m gwms_tasks.demo`` (what ``make demo`` runs)."""

from gwms_tasks.demo.run import main

raise SystemExit(main())
