"""tasks layer of gwms-tasks (see docs/ARCHITECTURE.md)."""
