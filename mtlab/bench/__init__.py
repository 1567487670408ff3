"""Benchmarks: training throughput (bare loop vs pipeline), memory vs length, decoding speed, targets."""

from mtlab.bench.run import bench_defaults, run_bench

__all__ = ["bench_defaults", "run_bench"]
