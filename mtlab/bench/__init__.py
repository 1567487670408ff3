"""Benchmarks: training throughput (bare loop vs pipeline), memory vs length, decoding speed, targets."""

from mtlab.bench.run import run_bench

__all__ = ["run_bench"]
