"""Benchmarks of the package against its baselines, run with ``espaloma-like benchmark``."""
