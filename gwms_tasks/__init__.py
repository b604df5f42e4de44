"""gwms-tasks: a glidein (pilot-job) factory in the design of glideinWMS, on Celery + Redis."""

from __future__ import annotations

__version__ = "0.1.0"
GLIDEINWMS_VERSION_STRING = "glideinWMS v3_10_17 gwms-tasks 0.1.0"
