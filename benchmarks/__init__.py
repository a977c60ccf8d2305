"""Benchmark harnesses and scripts: run from the repository root; not part of the lenet package."""
