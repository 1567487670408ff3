"""LightningDataModule: prepared corpus -> token-budget DataLoaders of :class:`mt.batch.Batch`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from datasets import Dataset
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from mt.data.collate import collate_pairs
from mt.data.config import DataConfig
from mt.data.errors import DataError
from mt.data.loader import ResumableDataLoader
from mt.data.preparation import Prepared, prepare
from mt.data.sampler import EvalBatchSampler, TokenBudgetBatchSampler
from mt.lightning_private import uses_distributed_sampler
from mt.tokenizer import Tokenizer

_LOADER_COLUMNS = ["id", "src", "tgt"]


class TranslationDataModule(L.LightningDataModule):
    """Train/validation/test loaders of one language pair of a corpus (``data`` and ``paths`` config groups).

    ``prepare_data`` (rank 0) downloads, trains the tokenizer and tokenizes into ``paths.cache_dir``;
    ``setup`` loads that cache on every rank. The accessors (``tokenizer``, ``stats()``, ...) set up on demand.
    Rows are read from the memory-mapped cache as batches are drawn; samplers hold only length arrays.
    """

    def __init__(
        self, data_cfg: DictConfig, paths_cfg: DictConfig, seed: int = 0, tokenizer: Tokenizer | None = None
    ) -> None:
        """:param data_cfg: the ``data`` node; paths_cfg: the ``paths`` node (only ``cache_dir`` is read).

        :param tokenizer: an existing model to tokenize with (e.g. ``Tokenizer.from_bytes`` of a checkpoint's);
            it takes precedence over ``data.tokenizer.path``, and nothing is trained. Give the same one on
            every rank.
        """
        super().__init__()
        self.cfg = DataConfig.from_omegaconf(data_cfg)
        self.cache_dir = Path(paths_cfg.cache_dir)
        self.seed = seed
        self.rank, self.world_size = 0, 1
        self._given_tokenizer = tokenizer
        self._data: Prepared | None = None

    # -- Lightning hooks ----------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Download missing files, train the tokenizer and tokenize every split (all cached on disk).

        The result is kept for this process; ``setup`` on the other ranks loads the same disk cache.
        """
        if self._data is None:
            self._data = prepare(self.cfg, self.cache_dir, self._given_tokenizer)

    def setup(self, stage: str | None = None) -> None:
        """Load the prepared splits; take rank and world size from the attached trainer (else 0 of 1)."""
        trainer = self.trainer
        if trainer is not None:
            self.rank, self.world_size = trainer.global_rank, trainer.world_size
            if self.world_size > 1 and uses_distributed_sampler(trainer):
                raise DataError(
                    "trainer.use_distributed_sampler must be false: the data module's batch sampler shards by rank"
                )
        if self._data is None:
            self._data = prepare(self.cfg, self.cache_dir, self._given_tokenizer)

    def train_dataloader(self) -> ResumableDataLoader:
        """Token-budget batches of the filtered training pairs, resumable mid-epoch."""
        return ResumableDataLoader(
            self._loader_dataset("train"),
            self.train_sampler(),
            collate_fn=collate_pairs,
            num_workers=self.cfg.num_workers,
        )

    def val_dataloader(self) -> DataLoader:
        """Every validation pair exactly once (this rank's share), longest batches first."""
        return self._eval_loader("validation")

    def test_dataloader(self) -> DataLoader | list[DataLoader]:
        """One loader per test set (a list when there are several), in ``test_names`` order."""
        loaders = [self._eval_loader(name) for name in self.test_names]
        return loaders[0] if len(loaders) == 1 else loaders

    # -- accessors ----------------------------------------------------------------------------------------
    @property
    def data(self) -> Prepared:
        if self._data is None:
            self.setup()
        assert self._data is not None
        return self._data

    @property
    def tokenizer(self) -> Tokenizer:
        return self.data.tokenizer

    @property
    def test_names(self) -> list[str]:
        """Names of the test sets (``data.splits.test``), as used by ``references``/``sources``."""
        return list(self.cfg.splits.test)

    def references(self, split: str) -> list[str]:
        """Target text of ``validation`` or a test set, in the original order (cleaned, see textfiles)."""
        return _texts(self._eval_split(split), "tgt_text")

    def sources(self, split: str) -> list[str]:
        """Source text of ``validation`` or a test set, in the original order."""
        return _texts(self._eval_split(split), "src_text")

    def train_sampler(self) -> TokenBudgetBatchSampler:
        """This rank's training batch sampler."""
        lengths = self.data.lengths["train"]
        return TokenBudgetBatchSampler(
            lengths.src,
            lengths.tgt,
            self.cfg.max_tokens,
            seed=self.seed,
            rank=self.rank,
            world_size=self.world_size,
            bucket_width=self.cfg.bucket_width,
        )

    def eval_sampler(self, split: str) -> EvalBatchSampler:
        """This rank's share of an evaluation split."""
        self._eval_split(split)  # checks the name
        lengths = self.data.lengths[split]
        return EvalBatchSampler(
            lengths.src,
            lengths.tgt,
            self.cfg.max_tokens,
            rank=self.rank,
            world_size=self.world_size,
        )

    def stats(self) -> dict[str, Any]:
        """Sentence and token counts per split, dropped pairs by reason, vocab size, train padding fraction."""
        sampler = self.train_sampler()
        return {
            "source": self.cfg.source,
            "name": self.cfg.name,
            "pair": self.cfg.pair,
            "vocab_size": self.tokenizer.vocab_size,
            "tokenizer": str(self.tokenizer.path),
            "splits": {name: vars(s) for name, s in self.data.stats.items()},
            "train_batches": len(sampler),
            "max_tokens": self.cfg.max_tokens,
            "padding_fraction": round(sampler.padding_fraction(epoch=0), 4),
            "cache": str(self.data.folder),
        }

    # -- internals ----------------------------------------------------------------------------------------
    def _eval_split(self, split: str) -> Dataset:
        names = ["validation", *self.test_names]
        if split not in names:
            raise DataError(f"unknown evaluation split {split!r}; available: {', '.join(names)}")
        return self.data.splits[split]

    def _loader_dataset(self, split: str) -> Dataset:
        return self.data.splits[split].select_columns(_LOADER_COLUMNS)

    def _eval_loader(self, split: str) -> DataLoader:
        return DataLoader(
            self._loader_dataset(split),
            batch_sampler=self.eval_sampler(split),
            collate_fn=collate_pairs,
            num_workers=self.cfg.num_workers,
        )


def _texts(ds: Dataset, name: str) -> list[str]:
    return ds.select_columns([name])[:][name]
