"""Data pipeline: corpora -> tokenizer -> cached tokenized splits -> token-budget batches of mt.batch.Batch.

Batching, collation, config and errors import at once; corpus preparation (``datasets``) and the Lightning data
module import on first use, so translating text (``source_batches``) starts without either.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mt.data.collate import collate_pairs, collate_sources, source_batches
from mt.data.config import DataConfig
from mt.data.errors import DataError
from mt.data.loader import ResumableDataLoader
from mt.data.sampler import EvalBatchSampler, TokenBudgetBatchSampler

if TYPE_CHECKING:
    from mt.data.datamodule import TranslationDataModule
    from mt.data.preparation import Prepared, SplitLengths, SplitStats, prepare

# (The module is `preparation`, not `prepare`: importing a submodule binds its name in this package, which
# would hide the lazily provided function `prepare`.)
_ON_FIRST_USE = {"TranslationDataModule": "mt.data.datamodule", "Prepared": "mt.data.preparation",
                 "SplitLengths": "mt.data.preparation", "SplitStats": "mt.data.preparation",
                 "prepare": "mt.data.preparation"}


def __getattr__(name: str) -> Any:
    if name in _ON_FIRST_USE:
        return getattr(importlib.import_module(_ON_FIRST_USE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DataConfig",
    "DataError",
    "EvalBatchSampler",
    "Prepared",
    "ResumableDataLoader",
    "SplitLengths",
    "SplitStats",
    "TokenBudgetBatchSampler",
    "TranslationDataModule",
    "collate_pairs",
    "collate_sources",
    "prepare",
    "source_batches",
]
