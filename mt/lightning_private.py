"""Every use of Lightning's private members lives here, each with the reason no public API does the job.

Covered by the tests for the Lightning range pinned in pyproject.toml (``lightning>=2.6,<2.7``); a new Lightning
release must pass tests/test_faults.py and tests/test_train.py (resume) before the bound moves.

* :class:`PeriodicCheckpoint` extends ``ModelCheckpoint`` through its protected hooks
  (``_should_save_on_train_epoch_end``, ``_should_skip_saving_checkpoint``, ``_save_last_checkpoint``,
  ``_monitor_candidates``): Lightning has no public way to refresh ``last.ckpt`` on our schedule.
* :func:`validation_follows` asks the fit loop whether a validation runs after this batch
  (``_should_check_val_fx``, ``_data_fetcher``): no public property says so.
* :func:`last_step_saved` reads ``ModelCheckpoint._last_global_step_saved``: not exposed publicly.
* :func:`uses_distributed_sampler` reads the Trainer's ``_accelerator_connector.use_distributed_sampler``: the
  Trainer keeps its constructor arguments private.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint


def last_step_saved(callback: ModelCheckpoint) -> int:
    """The global step of the callback's latest save."""
    return int(callback._last_global_step_saved)


def uses_distributed_sampler(trainer: Any) -> bool:
    """Whether the Trainer was asked to wrap samplers for distributed training (use_distributed_sampler)."""
    connector = getattr(trainer, "_accelerator_connector", None)
    return bool(getattr(connector, "use_distributed_sampler", False))


class PeriodicCheckpoint(ModelCheckpoint):
    """Refreshes ``last.ckpt`` every ``every_n_train_steps`` steps and after every validation, resumably.

    * No save on a batch that a validation follows: Lightning resumes a checkpoint written at the end of a training
      batch *after* the validation due right after it, so resuming from one written on the last batch of an epoch
      would silently skip that epoch's validation (its BLEU, best-k checkpoint, early-stopping and plateau-schedule
      updates). The save after that validation takes its place.
    * A save after every validation (at the end of the epoch when the validation is at the end of the epoch, the
      same place as ``callbacks.checkpoint``), unless ``last.ckpt`` was just written: Lightning's ModelCheckpoint
      refreshes ``last.ckpt`` only when a best-k checkpoint is written, so after a validation that did not improve
      the best k, ``last.ckpt`` would stay behind (and hold an older state at the end of training).
    """

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if not validation_follows(trainer):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)

    def _refresh_last(self, trainer: Any) -> None:
        if not self.save_last or self._should_skip_saving_checkpoint(trainer):
            return
        for cb in trainer.checkpoint_callbacks:  # another callback wrote last.ckpt at this step already
            if (cb is not self and isinstance(cb, ModelCheckpoint) and cb.save_last and cb.dirpath == self.dirpath
                    and last_step_saved(cb) == trainer.global_step):
                return
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


def validation_follows(trainer: Any) -> bool:
    """True when the fit loop will validate right after the current training batch."""
    loop = trainer.fit_loop.epoch_loop
    try:
        return bool(loop._should_check_val_fx(trainer.fit_loop._data_fetcher))
    except AttributeError:  # another Lightning version: at least the end-of-epoch validation
        return bool(loop.batch_progress.is_last_batch and trainer.enable_validation)
