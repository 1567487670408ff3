"""TranslationModule: training step, validation/test decoding with sacreBLEU, optimizer and schedule."""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from lightning import LightningModule
from lightning.pytorch.callbacks import Timer, WeightAveraging
from lightning.pytorch.trainer.states import TrainerFn
from torch import Tensor

from mt.batch import Batch
from mt.checkpoint import RAW_WEIGHTS
from mt.errors import MTError
from mt.loss import output_loss
from mt.metrics import Score, corpus_score
from mt.models import Seq2Seq
from mt.optim import OptimizerFactory
from mt.schedule import LRSchedule
from mt.simul.training import training_features
from mt.tokenizer import Tokenizer
from mt.translate import decode_batch, fit_batch, search_config, source_limit

log = logging.getLogger(__name__)


@dataclass
class EvalReferences:
    """Raw references of the evaluation sets, in original order: validation, and each test set by name."""

    validation: list[str]
    test: dict[str, list[str]] = field(default_factory=dict)


class TranslationModule(LightningModule):
    """Wraps any :class:`~mt.models.base.Seq2Seq` for training and exact, order-preserving evaluation.

    Everything arrives built: the model, the tokenizer, the references of the evaluation sets, an optimizer
    factory and the learning-rate schedule. ``run_config`` is the plain-data record of the run (model, optim,
    train, decode, data, vocab_size) stored as hyperparameters, so that a checkpoint rebuilds its model and
    loads with ``weights_only=True``; the tokenizer travels inside every checkpoint (model bytes + sha256).
    Scores come back as logged values: ``val/bleu``, ``test/<set>/bleu``, ``test/<set>/chrf``.
    """

    def __init__(self, model: Seq2Seq, run_config: dict, optimizer: OptimizerFactory, schedule: LRSchedule,
                 tokenizer: Tokenizer | None = None, references: EvalReferences | None = None) -> None:
        super().__init__()
        self.save_hyperparameters(run_config)
        train = self.hparams.train
        if train["nonfinite"] not in ("stop", "skip"):
            raise MTError(f"train.nonfinite={train['nonfinite']!r} is unknown; use stop or skip")
        self.model = model
        self.tokenizer = tokenizer  # None: training only (no evaluation, e.g. throughput benchmarks)
        self.references = references
        self.optimizer_factory = optimizer
        self.schedule = schedule  # one object: LambdaLR's multiplier, and told each validation BLEU (plateau)
        self.search_cfg = search_config(self.hparams.decode)  # test
        val_beam = self.hparams.decode.get("validation_beam_size")  # older checkpoints: no such key
        self.val_search_cfg = (self.search_cfg if val_beam is None else
                               replace(self.search_cfg, beam_size=int(val_beam), n_best=1))
        # evaluation cuts longer sources (decoding) and targets (loss) instead of failing or running out of memory
        self._max_src = source_limit(self.model, self.hparams.decode)
        self._max_tgt = self.model.max_target_len or (None if self._max_src is None else self._max_src + 1)
        self._truncated = 0  # sources cut in the current evaluation
        self._outputs: dict[int, list[tuple[int, list[int]]]] = {}
        self._tok_s: float | None = None
        self._t_last: float | None = None
        self._rng_to_restore: dict | None = None
        self._elapsed_before = 0.0  # wall-clock seconds of earlier (resumed-from) runs
        self._fit_t0 = time.perf_counter()
        self._fit_tokens = 0  # target tokens trained by this process in this fit (not counting resumed-from runs)
        self._budget_steps = math.inf  # optimizer steps the trainer will run (max_steps / max_epochs), set at start
        self._timer: Timer | None = None  # Lightning's max_time callback, found at start (None: no max_time)

    # ----------------------------------------------------------------------------------------------- training
    def training_step(self, batch: Batch, batch_idx: int) -> Tensor | None:
        n_tok = batch.n_tgt_tokens
        loss_sum, nll_sum = self._loss_sums(batch, self.hparams.train["label_smoothing"], sample=True)
        loss = loss_sum / max(n_tok, 1)
        finite = bool(torch.isfinite(loss))
        if self.trainer.world_size > 1:
            finite = self.trainer.strategy.reduce_boolean_decision(finite, all=True)
        if not finite:
            msg = f"non-finite training loss at step {self.global_step} (epoch {self.current_epoch})"
            if self.hparams.train["nonfinite"] == "skip":
                log.warning("%s: batch skipped (train.nonfinite=skip)", msg)
                return None
            raise FloatingPointError(f"{msg}; lower optim.lr, use trainer.precision=bf16-mixed or 32, "
                                     "or set train.nonfinite=skip to skip such batches")
        self._fit_tokens += n_tok
        self._log_throughput(n_tok)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch.size)
        self.log("train/nll", nll_sum / max(n_tok, 1), batch_size=batch.size)
        return loss

    def _loss_sums(self, batch: Batch, smoothing: float, sample: bool) -> tuple[Tensor, Tensor]:
        """(summed label-smoothed loss, summed NLL) over the batch's target tokens, full-sentence or wait-k as
        ``train`` asks (``sample``: draw multi-path k). The vocabulary projection is fused with the loss in blocks
        of ``train.loss_chunk`` tokens; null (and checkpoints from before the option) projects all at once."""
        features = training_features(self.model, batch, self.hparams.train, sample)  # (B, T, D)
        chunk = self.hparams.train.get("loss_chunk")
        return output_loss(features, self.model.output_layer, batch.tgt_out, smoothing,
                           None if chunk is None else int(chunk))

    def _log_throughput(self, n_tok: int) -> None:
        """Target tokens per second (all ranks), smoothed; shown in the progress bar."""
        now = time.perf_counter()
        if self._t_last is not None and now > self._t_last:
            rate = n_tok * self.trainer.world_size / (now - self._t_last)
            self._tok_s = rate if self._tok_s is None else 0.9 * self._tok_s + 0.1 * rate
            self.log("train/tok_s", self._tok_s, prog_bar=True)
        self._t_last = now

    def on_fit_start(self) -> None:
        self._fit_t0 = time.perf_counter()
        self._fit_tokens = 0

    def fit_throughput(self) -> float:
        """Target tokens trained per wall-clock second of this fit (all ranks; validation time included)."""
        tokens = float(self._fit_tokens)
        if self.trainer.world_size > 1:
            tokens = float(self.trainer.strategy.reduce(torch.tensor(tokens, device=self.device), reduce_op="sum"))
        return tokens / max(time.perf_counter() - self._fit_t0, 1e-9)

    def elapsed_s(self) -> float:
        """Wall-clock seconds of fitting so far (validation included), summed over resumes."""
        return self._elapsed_before + time.perf_counter() - self._fit_t0

    def budget_spent(self) -> float:
        """Fraction of the training budget spent: optimizer steps against the trainer's step limit (max_steps or
        max_epochs), wall-clock against ``trainer.max_time`` (Lightning's Timer, resumes included), whichever is
        further. 0 when the run has no limit."""
        spent = self.global_step / self._budget_steps if math.isfinite(self._budget_steps) else 0.0
        remaining = None if self._timer is None else self._timer.time_remaining("train")  # None: no max_time
        if remaining is not None:
            elapsed = self._timer.time_elapsed("train")
            spent = max(spent, elapsed / max(elapsed + remaining, 1e-9))
        return spent

    def on_train_epoch_start(self) -> None:
        self._t_last = None

    def on_validation_start(self) -> None:
        self._t_last = None  # do not count validation time as a training step

    # --------------------------------------------------------------------------------------------- evaluation
    def validation_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step(batch, dataloader_idx, "val")

    def test_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step(batch, dataloader_idx, "test")

    def _eval_step(self, batch: Batch, dataloader_idx: int, stage: str) -> None:
        batch, n_cut = fit_batch(batch, self._max_src, self._max_tgt)
        self._truncated += n_cut
        if batch.tgt_out is not None:
            _, nll_sum = self._loss_sums(batch, 0.0, sample=False)
            n_tok = batch.n_tgt_tokens
            self.log(f"{stage}/loss", nll_sum / max(n_tok, 1), batch_size=n_tok, sync_dist=True,
                     add_dataloader_idx=dataloader_idx > 0)
        hyps = decode_batch(self.model, batch, self.val_search_cfg if stage == "val" else self.search_cfg)
        self._outputs.setdefault(dataloader_idx, []).extend(zip(batch.ids.tolist(), hyps, strict=True))

    def on_validation_epoch_start(self) -> None:
        self._outputs = {}
        self._truncated = 0

    on_test_epoch_start = on_validation_epoch_start

    def _warn_truncated(self) -> None:
        if self._truncated:
            log.warning("%s: %d source sentence(s) longer than %d subwords were truncated for decoding "
                        "(decode.max_src_len and the model's limit); they are still translated and scored",
                        "test" if self.trainer.testing else "validation", self._truncated, self._max_src)

    def on_validation_epoch_end(self) -> None:
        self._warn_truncated()
        if self.trainer.sanity_checking:
            self._outputs = {}
            return
        score = self._score_outputs("validation", self._references().validation, 0)
        self.log("val/bleu", score.bleu, prog_bar=True, sync_dist=False)
        self.log("val/chrf", score.chrf, sync_dist=False)
        self.log("val/elapsed_s", self.elapsed_s(), sync_dist=False)
        if self.schedule.observe(score.bleu):
            log.info("validation BLEU did not improve: learning-rate scale now %.3g", self.schedule.scale)

    def on_test_epoch_end(self) -> None:
        self._warn_truncated()
        for idx, (name, refs) in enumerate(self._references().test.items()):  # dataloader order = set order
            score = self._score_outputs(name, refs, idx)
            self.log(f"test/{name}/bleu", score.bleu, sync_dist=False)
            self.log(f"test/{name}/chrf", score.chrf, sync_dist=False)
            self.log(f"test/{name}/n_sentences", float(score.n_sentences), sync_dist=False)

    def _references(self) -> EvalReferences:
        if self.references is None or self.tokenizer is None:
            raise RuntimeError("this TranslationModule was built without tokenizer and references: it can train "
                               "but not evaluate")
        return self.references

    def _score_outputs(self, split: str, refs: list[str], dataloader_idx: int) -> Score:
        """Gather (id, tokens) from all ranks, restore original order, detokenize and score."""
        local = self._outputs.get(dataloader_idx, [])
        if self.trainer.world_size > 1:
            gathered: list[Any] = [None] * self.trainer.world_size
            torch.distributed.all_gather_object(gathered, local)
            pairs = [p for part in gathered for p in part]
        else:
            pairs = local
        by_id = dict(pairs)
        if len(by_id) != len(pairs):
            raise RuntimeError(f"{split}: {len(pairs) - len(by_id)} sentences were decoded more than once")
        ids = sorted(by_id)
        if ids != list(range(len(refs))):
            if not self._subset_requested() or ids[-1] >= len(refs):
                raise RuntimeError(f"{split}: decoded {len(ids)} hypotheses for {len(refs)} references; every "
                                   "sentence must be decoded exactly once")
            log.warning("%s: scoring %d of %d sentences (limit_*_batches / fast_dev_run)", split, len(ids), len(refs))
            refs = [refs[i] for i in ids]
        hyps = self.tokenizer.decode([by_id[i] for i in ids])
        assert len(hyps) == len(refs)
        score = corpus_score(hyps, refs, tgt_lang=self.hparams.data["tgt"],
                             tokenize=self.hparams.decode.get("bleu_tokenize"))  # .get: older checkpoints
        if self.global_rank == 0:
            self._report(split, score, hyps, refs)
        return score

    def _subset_requested(self) -> bool:
        """True when the user limited evaluation batches, so a partial hypothesis set is expected."""
        t = self.trainer
        limit = t.limit_test_batches if t.testing else t.limit_val_batches
        # an int is a number of batches (limit_val_batches=1 is one batch); only the float 1.0 means "all of them"
        return bool(t.fast_dev_run) or not (isinstance(limit, float) and limit == 1.0)

    def _report(self, split: str, score: Score, hyps: list[str], refs: list[str]) -> None:
        n = int(self.hparams.train["log_samples"])
        lines = [f"[{split} step {self.global_step}] BLEU {score.bleu:.2f} chrF {score.chrf:.2f}",
                 f"  {score.bleu_signature}"]
        lines += [f"  hyp: {h}\n  ref: {r}" for h, r in list(zip(hyps, refs, strict=True))[:n]]
        log.info("\n".join(lines))
        for logger in self.loggers:
            exp = getattr(logger, "experiment", None)
            if hasattr(exp, "add_text"):
                exp.add_text(f"{split}/samples", "\n\n".join(f"**hyp** {h}  \n**ref** {r}" for h, r in
                                                             list(zip(hyps, refs, strict=True))[:n]),
                             self.global_step)
                exp.add_text(f"{split}/signature", score.bleu_signature, self.global_step)

    # ------------------------------------------------------------------------------------ optimizer, schedule
    def configure_optimizers(self) -> dict:
        optimizer = self.optimizer_factory(self.model)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self.schedule)  # one multiplier, every group
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def lr_scheduler_step(self, scheduler: torch.optim.lr_scheduler.LRScheduler, metric: Any) -> None:
        """After each optimizer step: the next step's rate, with the budget spent so far (optim.schedule=linear)."""
        self.schedule.set_progress(self.budget_spent())
        scheduler.step()

    # ------------------------------------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.tokenizer is not None:
            checkpoint["tokenizer"] = {"model": torch.frombuffer(bytearray(self.tokenizer.model_bytes),
                                                                 dtype=torch.uint8),
                                       "sha256": self.tokenizer.sha256}
        checkpoint["elapsed_s"] = self.elapsed_s()
        checkpoint["rng"] = {"torch": torch.get_rng_state(), "python": list_state(random.getstate())}
        if torch.cuda.is_available():
            checkpoint["rng"]["cuda"] = torch.cuda.get_rng_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if (RAW_WEIGHTS in checkpoint and self.trainer.state.fn == TrainerFn.FITTING
                and not any(isinstance(c, WeightAveraging) for c in self.trainer.callbacks)):
            # written with callbacks.ema (ModelEMA): state_dict holds the average; training goes on from the raw
            checkpoint["state_dict"] = checkpoint[RAW_WEIGHTS]
            log.warning("resuming a run that kept an EMA of its weights without callbacks.ema: training goes on from "
                        "the raw weights and the average is dropped; add callbacks=[default,ema] to keep it")
        self._rng_to_restore = checkpoint.get("rng")
        self._elapsed_before = float(checkpoint.get("elapsed_s", 0.0))

    def on_train_start(self) -> None:
        self._budget_steps = float(self.trainer.estimated_stepping_batches)  # inf without a step / epoch limit
        self._timer = next((c for c in self.trainer.callbacks if isinstance(c, Timer)), None)
        if self._rng_to_restore:  # resumed: continue the random streams (dropout) where they stopped
            rng = self._rng_to_restore
            torch.set_rng_state(rng["torch"])
            random.setstate(tuple_state(rng["python"]))
            if "cuda" in rng and torch.cuda.is_available():
                torch.cuda.set_rng_state(rng["cuda"])
            self._rng_to_restore = None


def list_state(state: tuple) -> list:
    """random.getstate() as nested lists (plain data for weights_only checkpoints)."""
    return [list(s) if isinstance(s, tuple) else s for s in state]


def tuple_state(state: list) -> tuple:
    return tuple(tuple(s) if isinstance(s, list) else s for s in state)


