"""The LSTM vs Transformer comparison: resumable training runs, benchmarks, REPORT.md, results.json, plots."""

from mtlab.compare.run import compare

__all__ = ["compare"]
