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
* :class:`ModelEMA` extends ``WeightAveraging`` through its protected members (``_average_model``, ``_kwargs``,
  ``_swap_models``, ``_copy_average_to_current``): the public callback averages a deep copy of the whole
  LightningModule and restores the raw weights when a checkpoint is tested; ours averages the model alone and
  tests the average (see the class).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, WeightAveraging
from lightning.pytorch.trainer.states import TrainerFn
from torch import Tensor
from torch.optim.swa_utils import AveragedModel

from mt.checkpoint import MODEL_PREFIX, RAW_WEIGHTS, model_state
from mt.errors import MTError


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


def ema_update(decay: float, window_fraction: float | None):
    """``AveragedModel``'s ``multi_avg_fn``: ``ema = lerp(ema, weights, 1 - d)`` for all tensors at once.

    The average spans about ``1 / (1 - d)`` updates. With ``window_fraction`` f, ``d = min(decay, 1 - 1 / (1 +
    f (n + 1)))`` after ``n`` updates: the window is about the last f of the updates so far (the first weights are
    far from any good model), until it reaches ``1 / (1 - decay)``; f = 1/9 is timm's ``(1 + n) / (10 + n)``.
    None: ``d = decay`` from the first update on.
    """

    @torch.no_grad()
    def update(averaged: list[Tensor], current: list[Tensor], n_averaged: Tensor) -> None:
        d = decay
        if window_fraction is not None:
            d = min(decay, 1.0 - 1.0 / (1.0 + window_fraction * (float(n_averaged) + 1.0)))
        torch._foreach_lerp_(averaged, current, 1.0 - d)

    return update


class ModelEMA(WeightAveraging):
    """EMA of ``pl_module.model``'s parameters, validated, checkpointed and tested in place of the raw weights.

    Lightning's ``WeightAveraging`` keeps an ``AveragedModel`` of the whole LightningModule (a deep copy of all it
    holds: tokenizer, references, schedule), and whenever it is present a checkpoint loaded by ``trainer.test`` or
    ``trainer.validate`` puts the *raw* weights back into the module. This one averages the Seq2Seq alone
    (``pl_module.model``) and leaves evaluation from a checkpoint with the averaged weights. The rest is
    Lightning's: the update after each optimizer step, the swap around validation (validation BLEU, model
    selection and early stopping see the average), and the average in the checkpoint's ``state_dict`` (what
    evaluate.py, mt.export and init_from read) with the raw weights beside it (``current_model_state``, for
    resuming). Unlike Lightning's, the module keeps its raw weights when fitting ends: the last.ckpt written then
    must resume them exactly (the pipeline tests checkpoints, not the module).

    ``decay`` and ``window_fraction``: see :func:`ema_update` (the longest window is ``1 / (1 - decay)`` optimizer
    steps); ``every_n_steps``: update after every N-th optimizer step (each update reads and writes all parameters).
    """

    def __init__(self, decay: float = 0.999, window_fraction: float | None = None, every_n_steps: int = 1) -> None:
        if not 0.0 < decay < 1.0:
            raise MTError(f"callbacks.ema.decay={decay} is outside (0, 1); use e.g. 0.999 (a window of ~1000 steps)")
        if window_fraction is not None and not 0.0 < window_fraction <= 1.0:
            raise MTError(f"callbacks.ema.window_fraction={window_fraction} is outside (0, 1]; use e.g. 0.1 (the "
                          "last tenth of the updates), or null for a fixed decay")
        if every_n_steps < 1:
            raise MTError(f"callbacks.ema.every_n_steps={every_n_steps} must be >= 1")
        super().__init__(use_buffers=False, multi_avg_fn=ema_update(decay, window_fraction))
        self.every_n_steps = every_n_steps

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return step_idx is not None and (step_idx + 1) % self.every_n_steps == 0

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit":
            self._average_model = AveragedModel(pl_module.model, use_buffers=False, **self._kwargs)

    @property
    def n_averaged(self) -> int:
        """Updates folded into the average so far (0 before fitting or before the first update)."""
        return 0 if self._average_model is None else int(self._average_model.n_averaged)

    def _pairs(self, pl_module: L.LightningModule):
        assert self._average_model is not None
        return zip(self._average_model.module.parameters(), pl_module.model.parameters(), strict=True)

    def _swap_models(self, pl_module: L.LightningModule) -> None:
        with torch.no_grad():
            for averaged, current in self._pairs(pl_module):
                tmp = averaged.clone()
                averaged.copy_(current)
                current.copy_(tmp)

    def _copy_average_to_current(self, pl_module: L.LightningModule) -> None:
        with torch.no_grad():
            for averaged, current in self._pairs(pl_module):
                current.copy_(averaged)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Keep the raw weights in the module (see the class docstring); checkpoints carry the average."""

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        if self._average_model is None:  # outside fitting: the module already holds what it was loaded with
            return
        raw = checkpoint["state_dict"]
        averaged = {MODEL_PREFIX + k: v for k, v in self._average_model.module.state_dict().items()}
        checkpoint[RAW_WEIGHTS] = raw
        checkpoint["state_dict"] = {**raw, **averaged}
        checkpoint["averaging_state"] = {"n_averaged": self._average_model.n_averaged.detach().clone()}

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        if self._average_model is None or trainer.state.fn != TrainerFn.FITTING:
            return  # test/validate/predict: the module keeps state_dict, the averaged weights
        self._average_model.module.load_state_dict(model_state(checkpoint))
        if RAW_WEIGHTS in checkpoint:  # resuming: the raw weights go on training
            self._average_model.n_averaged.copy_(checkpoint["averaging_state"]["n_averaged"])
            pl_module.load_state_dict(checkpoint[RAW_WEIGHTS])
        # else: a checkpoint written without EMA; its weights are both the model and the average's start
