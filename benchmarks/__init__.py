"""Benchmarks run by `make bench`: each `bench_*.py` module exposes `run() -> dict` of measured figures."""
