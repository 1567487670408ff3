"""Data pipeline: corpora -> tokenizer -> cached tokenized splits -> token-budget batches of mt.batch.Batch."""

from mt.data.collate import collate_pairs, collate_sources, source_batches
from mt.data.config import DataConfig
from mt.data.datamodule import TranslationDataModule
from mt.data.errors import DataError
from mt.data.loader import ResumableDataLoader
from mt.data.prepare import Prepared, SplitLengths, SplitStats, prepare
from mt.data.sampler import EvalBatchSampler, TokenBudgetBatchSampler

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
