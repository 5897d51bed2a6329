"""Benchmarks run as tests with --benchmark-disable (each body runs once, asserts still hold)."""
