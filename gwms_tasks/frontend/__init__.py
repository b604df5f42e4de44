"""The VO frontend: watches a group's jobs and asks the factories for glideins to run them.

Same layering as the factory (docs/ARCHITECTURE.md):

- pure (``core_*.py``, no I/O, clock or environment; checked by
  ``tests/frontend/test_frontend_core_is_pure.py``): the config schema (``core_config``), jobs
  and the JobSource port (``core_jobs``), the factory ads it believes (``core_factories``),
  job-to-entry matching (``core_match``), the request arithmetic (``core_plan``), the ads it
  publishes (``core_ads``), its staging area (``core_staging``), one whole cycle decided
  (``core_cycle``) and its explanation (``core_explain``);
- adapters: job sources (``source_celery``, ``source_schedd``, ``source_memory``), the
  explanation store (``state``), files (``files``);
- the cycle through the ports (``cycle``, with ``deps``), and the Celery app whose beat runs it
  every loop (``celery_app``). The CLI is ``gwms frontend ...`` (``cli/frontend_cmd.py``).
"""
