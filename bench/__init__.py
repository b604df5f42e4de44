"""Benchmarks of gwms-tasks (see bench/README.md)."""
