"""Training throughput (target tokens/s): a bare PyTorch loop against the pipeline's Lightning training.

Both run the same steps on the same batches: TranslationModule's model, label-smoothed loss, AdamW and
schedule (``configure_optimizers``), gradient clipping, autocast for bf16/16. The bare loop is the floor any
framework adds overhead to; the pipeline is Lightning's Trainer (no validation, logging or checkpointing)
around TranslationModule.training_step. Each run starts from a fresh, identically seeded model; the clock
covers the steps after ``warmup`` (time between the end of step ``warmup`` and the end of the last step).
"""

from __future__ import annotations

import contextlib
import logging
import statistics
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from mt.api import BOS_ID, EOS_ID, LIGHTNING, Batch, autocast_for, batch_loss
from mtlab.bench.flops import step_flops
from mtlab.bench.models import ModelSpec
from mtlab.bench.system import synchronize


@dataclass
class ThroughputRow:
    """Median target tokens/s of one preset, precision and batch source; pipeline/bare is per repeat."""

    preset: str
    precision: str
    source: str  # synthetic | real
    tokens_per_step: float  # mean target tokens of the timed steps
    bare_tok_s: float
    pipeline_tok_s: float | None
    pipeline_vs_bare: float | None  # median over repeats of pipeline / bare of the same repeat
    bare_runs: list[float]
    pipeline_runs: list[float]
    mflop_per_token: float  # forward + backward arithmetic per target token (mtlab/bench/flops.py)
    matmul_peak_gflop_s: float  # this machine's large square matrix products in the precision's dtype
    bare_of_peak: float  # bare loop GFLOP/s over that peak: how close to the matrix-product roofline

    def as_dict(self) -> dict:
        return asdict(self)


def synthetic_batches(n: int, batch: int, length: int, vocab_size: int, seed: int) -> list[Batch]:
    """``n`` full batches of random sentences: source and target ``length`` tokens each, no padding."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        src = torch.randint(4, vocab_size, (batch, length), generator=g)  # (B, S)
        src[:, -1] = EOS_ID
        y = torch.randint(4, vocab_size, (batch, length - 1), generator=g)  # (B, T - 1)
        tgt_in = torch.cat([torch.full((batch, 1), BOS_ID), y], dim=1)  # (B, T)
        tgt_out = torch.cat([y, torch.full((batch, 1), EOS_ID)], dim=1)  # (B, T)
        out.append(Batch(src, torch.full((batch,), length), torch.arange(batch), tgt_in, tgt_out))
    return out


def _tok_s(times: list[float], tokens: list[int], warmup: int) -> float:
    """Tokens of steps warmup+1..N over the time from the end of step ``warmup`` to the end of step N.

    times[0] is the clock before the first step, times[i] the end of step i.
    """
    return sum(tokens[warmup:]) / (times[-1] - times[warmup])


def bare_run(spec: ModelSpec, module: L.LightningModule, batches: list[Batch], precision: str,
             device: torch.device) -> list[float]:
    """Train on ``batches`` with a plain loop; returns the clock before the first step and after each step."""
    model = module.model.to(device).train()
    conf = module.configure_optimizers()
    optimizer, scheduler = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    scaler = torch.amp.GradScaler(device.type) if precision == "16" else None
    smoothing = spec.label_smoothing
    n_tokens = [b.n_tgt_tokens for b in batches]  # known before the step, as any loop would know it
    synchronize(device)
    times = [time.perf_counter()]
    for batch, n_tok in zip(batches, n_tokens, strict=True):
        batch = batch.to(device)
        with autocast_for(device, precision):
            loss_sum, _ = batch_loss(model, batch, smoothing, spec.loss_chunk)
            loss = loss_sum / max(n_tok, 1)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), spec.gradient_clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        synchronize(device)
        times.append(time.perf_counter())
    return times


class _StepClock(Callback):
    """Clock readings before the first step and after each optimizer step (after the GPU finished)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.times: list[float] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        synchronize(self.device)
        self.times = [time.perf_counter()]

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: object,
                           batch: object, batch_idx: int) -> None:
        synchronize(self.device)
        self.times.append(time.perf_counter())


def _identity(batch: Batch) -> Batch:
    return batch


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Lightning's per-Trainer info lines and warnings (no val_dataloader, ...) would bury the benchmark output."""
    names = ["lightning.pytorch", "lightning.fabric", "lightning"]
    levels = [logging.getLogger(n).level for n in names]
    for n in names:
        logging.getLogger(n).setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for n, level in zip(names, levels, strict=True):
            logging.getLogger(n).setLevel(level)


def pipeline_run(spec: ModelSpec, module: L.LightningModule, batches: list[Batch], precision: str,
                 device: torch.device) -> list[float]:
    """Train on ``batches`` with the pipeline's Trainer + TranslationModule; same clock as :func:`bare_run`."""
    clock = _StepClock(device)
    with _quiet_lightning():
        gpu = device.type == "cuda"
        trainer = L.Trainer(accelerator="gpu" if gpu else "cpu", devices=[device.index] if gpu and device.index else 1,
                            precision=LIGHTNING[precision], max_steps=len(batches), max_epochs=-1,
                            limit_val_batches=0, num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False, gradient_clip_val=spec.gradient_clip,
                            callbacks=[clock], use_distributed_sampler=False)
        loader = DataLoader(batches, batch_size=None, shuffle=False, collate_fn=_identity)
        trainer.fit(module, train_dataloaders=loader)
    if len(clock.times) != len(batches) + 1:
        raise RuntimeError(f"pipeline ran {len(clock.times) - 1} of {len(batches)} steps")
    return clock.times


def measure(spec: ModelSpec, make_module: Callable[[], L.LightningModule], batches: list[Batch], precision: str, source: str,
            device: torch.device, cfg: DictConfig, peak_flop_s: float) -> ThroughputRow:
    """Alternate bare and pipeline runs ``cfg.repeats`` times on the same batches; medians of tokens/s. The step's
    arithmetic is counted on the first two timed batches; ``peak_flop_s``: :func:`matmul_peak` for the precision."""
    warmup = int(cfg.warmup)
    tokens = [b.n_tgt_tokens for b in batches]
    bare, pipe = [], []
    for r in range(int(cfg.repeats)):
        loops = ["bare", "pipeline"] if cfg.pipeline else ["bare"]
        for loop in loops if r % 2 == 0 else loops[::-1]:  # alternate the order: drifts hit both alike
            run = bare_run if loop == "bare" else pipeline_run
            times = run(spec, make_module(), batches, precision, device)
            (bare if loop == "bare" else pipe).append(_tok_s(times, tokens, warmup))
    ratio = statistics.median(p / b for p, b in zip(pipe, bare, strict=True)) if pipe else None
    counted = batches[warmup:warmup + 2]
    model = make_module().model.to(device)
    flops = sum(step_flops(model, b.to(device), spec.label_smoothing, spec.loss_chunk, precision, device)
                for b in counted) / sum(b.n_tgt_tokens for b in counted)  # per target token
    bare_tok_s = statistics.median(bare)
    return ThroughputRow(spec.preset, precision, source, sum(tokens[warmup:]) / len(tokens[warmup:]),
                         bare_tok_s, statistics.median(pipe) if pipe else None, ratio,
                         [round(x, 1) for x in bare], [round(x, 1) for x in pipe], round(flops / 1e6, 2),
                         round(peak_flop_s / 1e9, 1), round(bare_tok_s * flops / peak_flop_s, 3))
