"""core layer of gwms-tasks (see docs/ARCHITECTURE.md)."""
