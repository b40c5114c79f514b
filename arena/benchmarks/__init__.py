"""Benchmarks run by management commands (``bench_votes``): load generators and their orchestration."""
