"""train(cfg): the plain, testable function behind train.py."""

from __future__ import annotations

import json
import logging
import os
import resource
from dataclasses import asdict, dataclass, field
from pathlib import Path

import hydra
import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, Timer
from omegaconf import DictConfig, OmegaConf

from mt.checkpoint import (
    CheckpointError,
    average_checkpoints,
    check_model_state,
    checkpoint_tokenizer,
    load_checkpoint,
    model_state,
    remove_stale_temp_files,
)
from mt.checkpoint_io import AtomicCheckpointIO
from mt.config_check import check_config
from mt.data import TranslationDataModule
from mt.device import has_bf16_units, short_precision, train_precision, training_device
from mt.errors import require_values
from mt.metrics import metric_signatures
from mt.models import build_model
from mt.module import EvalReferences, TranslationModule
from mt.optim import optimizer_factory, schedule_from
from mt.preflight import check_output_dir, resolve_ckpt_path
from mt.textio import atomic_open, atomic_write_text
from mt.tokenizer import Tokenizer

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a training run produced."""

    output_dir: str
    best_bleu: float | None
    best_checkpoint: str | None
    last_checkpoint: str | None
    averaged_checkpoint: str | None
    global_step: int
    epochs: int
    num_parameters: int
    model_family: str  # the model's traits.family (tools pair systems by it, never by class name)
    peak_memory_mb: float  # CUDA: peak allocated by this process; CPU: peak resident set size
    fit_seconds: float  # wall-clock time of fitting, validation included, summed over resumes
    fit_tok_s: float  # target tokens trained per second of this fit (a resumed run: since the resume), validation included
    precision: str  # the Lightning precision it trained in (trainer.precision=auto resolved for this machine)
    stopped_by: str  # why fitting ended: early_stopping | max_steps | max_time | max_epochs | interrupted | other
    test: dict[str, dict] = field(default_factory=dict)  # the best checkpoint's test scores
    test_averaged: dict[str, dict] = field(default_factory=dict)  # average_best=true: the averaged checkpoint's


def peak_memory_mb() -> float:
    """Peak memory of this process: CUDA allocator peak when on GPU, else the peak RSS."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def stop_reason(trainer: L.Trainer) -> str:
    """Why ``trainer.fit`` ended: early stopping (converged by its criterion), one of the limits, or an
    interruption; a converged comparison needs to tell the first from the others."""
    if trainer.interrupted:
        return "interrupted"
    if any(cb.stopped_epoch > 0 or cb.wait_count >= cb.patience
           for cb in trainer.callbacks if isinstance(cb, EarlyStopping)):
        return "early_stopping"
    if trainer.max_steps != -1 and trainer.global_step >= trainer.max_steps:
        return "max_steps"
    if any((left := cb.time_remaining()) is not None and left <= 0
           for cb in trainer.callbacks if isinstance(cb, Timer)):
        return "max_time"
    if trainer.max_epochs not in (None, -1) and trainer.current_epoch >= trainer.max_epochs:
        return "max_epochs"
    return "other"


def build_trainer(cfg: DictConfig, output_dir: Path) -> L.Trainer:
    """Lightning Trainer from the ``trainer``, ``callbacks`` and ``logger`` groups."""
    callbacks = [hydra.utils.instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    loggers = [hydra.utils.instantiate(c) for c in (cfg.get("logger") or {}).values() if c] or False
    trainer_kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    device = training_device(trainer_kwargs.get("accelerator", "auto"))
    precision = train_precision(trainer_kwargs["precision"], device)
    if precision != str(trainer_kwargs["precision"]):
        log.info("trainer.precision=%s: training in %s on this machine", trainer_kwargs["precision"], precision)
    if short_precision(precision) == "bf16" and not has_bf16_units(device):
        log.warning("trainer.precision=%s on a %s without bf16 units: bf16 is emulated there and much slower than "
                    "float32; use trainer.precision=auto or 32", precision, device.type.upper())
    trainer_kwargs["precision"] = precision
    return L.Trainer(**trainer_kwargs, callbacks=callbacks, logger=loggers,
                     plugins=[AtomicCheckpointIO()], default_root_dir=str(output_dir))


def run_config(cfg: DictConfig, vocab_size: int) -> dict:
    """The plain-data record of a run that checkpoints carry (enough to rebuild model and decoding)."""
    plain = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("model", "optim", "train", "decode", "data")}
    return {**plain, "vocab_size": vocab_size}


def build_module(cfg: DictConfig, vocab_size: int, tokenizer: Tokenizer | None = None,
                 references: EvalReferences | None = None) -> TranslationModule:
    """The LightningModule of a composed train config, every part built here and handed in.

    Without tokenizer and references the module trains but cannot evaluate (throughput benchmarks).
    """
    record = run_config(cfg, vocab_size)
    return TranslationModule(build_model(cfg.model, vocab_size), record,
                             optimizer=optimizer_factory(record["optim"]), schedule=schedule_from(record["optim"]),
                             tokenizer=tokenizer, references=references)


def _fitting_checkpoint(cfg: DictConfig, option: str, path: str | dict, module: TranslationModule,
                        tokenizer_sha: str, hint: str) -> dict:
    """The checkpoint at ``path`` (given as ``cfg.<option>``; or already loaded), checked to fit this run's
    tokenizer and model."""
    ckpt = load_checkpoint(path) if not isinstance(path, dict) else path
    if ckpt.get("tokenizer", {}).get("sha256") != tokenizer_sha:
        raise CheckpointError(f"{option}={cfg[option]} was trained with another tokenizer than data="
                              f"{cfg.data.name} {cfg.data.src}-{cfg.data.tgt} builds; {hint}")
    check_model_state(module.model, model_state(ckpt), f"{option}={cfg[option]}")
    return ckpt


def test_scores(logged: list[dict[str, float]], names: list[str], cfg: DictConfig) -> dict[str, dict]:
    """``trainer.test``'s returned metrics -> {test set: {bleu, chrf, signatures, n_sentences}}."""
    merged = {k: v for per_loader in logged for k, v in per_loader.items()}
    sig = metric_signatures(tgt_lang=cfg.data.tgt, tokenize=cfg.decode.bleu_tokenize)
    return {name: {"bleu": float(merged[f"test/{name}/bleu"]), "chrf": float(merged[f"test/{name}/chrf"]),
                   "bleu_signature": sig.bleu, "chrf_signature": sig.chrf,
                   "n_sentences": int(merged[f"test/{name}/n_sentences"])} for name in names}


def train(cfg: DictConfig) -> TrainResult:
    """Prepare data, build the model, fit, then test the best checkpoint; returns a :class:`TrainResult`."""
    require_values(cfg)
    check_config(cfg)  # types, ranges and relations of the project's keys, before any data preparation
    output_dir = Path(cfg.paths.output_dir)
    check_output_dir(output_dir)
    ckpt_path = resolve_ckpt_path(cfg.ckpt_path, output_dir)
    L.seed_everything(cfg.seed, workers=True)

    init = load_checkpoint(cfg.init_from) if cfg.init_from else None
    # fine-tuning keeps the checkpoint's tokenizer (its ids are the model's), unless data.tokenizer.path names one
    reuse = (checkpoint_tokenizer(init, cfg.init_from, cfg.paths.cache_dir)
             if init is not None and not cfg.data.tokenizer.path else None)
    dm = TranslationDataModule(cfg.data, cfg.paths, seed=cfg.seed, tokenizer=reuse)
    dm.prepare_data()
    tokenizer = dm.tokenizer
    references = EvalReferences(dm.references("validation"), {name: dm.references(name) for name in dm.test_names})
    module = build_module(cfg, tokenizer.vocab_size, tokenizer, references)
    n_params = module.model.num_parameters()
    log.info("model %s: %s parameters (%.2fM), vocabulary %d", cfg.model._target_.rsplit(".", 1)[-1],
             f"{n_params:,}", n_params / 1e6, tokenizer.vocab_size)
    if init is not None:
        _fitting_checkpoint(cfg, "init_from", init, module, tokenizer.sha256,
                            "leave data.tokenizer.path unset to fine-tune with the checkpoint's own tokenizer")
        module.model.load_state_dict(model_state(init))  # checked to fit above
        log.info("initialised weights from %s (optimizer and counters start fresh)", cfg.init_from)
    if ckpt_path:  # a misfit is one line now, not Lightning's multi-line state-dict error inside fit
        _fitting_checkpoint(cfg, "ckpt_path", ckpt_path, module, tokenizer.sha256,
                            "resume with the run's own config (<run dir>/.hydra/config.yaml), or use init_from= "
                            "to start from its weights")

    is_local_zero = int(os.environ.get("LOCAL_RANK", 0)) == 0
    if is_local_zero:
        with atomic_open(output_dir / tokenizer.path.name, "wb") as f:  # tokenizer reference
            f.write(tokenizer.model_bytes)
    trainer = build_trainer(cfg, output_dir)
    if is_local_zero:  # before fitting, so no save is in progress
        for folder in {c.dirpath for c in trainer.checkpoint_callbacks if getattr(c, "dirpath", None)}:
            if removed := remove_stale_temp_files(folder):
                log.warning("removed %d temporary file(s) of checkpoint writes interrupted in %s", removed, folder)
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path, weights_only=True)

    ckpt_cb = trainer.checkpoint_callback if isinstance(trainer.checkpoint_callback, ModelCheckpoint) else None
    best = ckpt_cb.best_model_path if ckpt_cb and ckpt_cb.best_model_path else None
    last = ckpt_cb.last_model_path if ckpt_cb and ckpt_cb.last_model_path else None
    best_bleu = float(ckpt_cb.best_model_score) if ckpt_cb and ckpt_cb.best_model_score is not None else None
    averaged = None
    if cfg.average_best and ckpt_cb and len(ckpt_cb.best_k_models) > 1 and trainer.is_global_zero:
        averaged = str(average_checkpoints(sorted(ckpt_cb.best_k_models), output_dir / "checkpoints/averaged.ckpt"))
        log.info("averaged %d best checkpoints into %s", len(ckpt_cb.best_k_models), averaged)

    result = TrainResult(str(output_dir), best_bleu, best, last, averaged, trainer.global_step,
                         trainer.current_epoch, n_params, module.model.traits.family, round(peak_memory_mb(), 1),
                         round(module.elapsed_s(), 1), round(module.fit_throughput(), 1), str(trainer.precision),
                         stop_reason(trainer))
    if cfg.test_after_fit and not trainer.interrupted:
        logged = trainer.test(module, datamodule=dm, ckpt_path=best, weights_only=True, verbose=False)
        result.test = test_scores(logged, list(references.test), cfg)
        if averaged_everywhere := trainer.strategy.broadcast(averaged):  # written by rank 0 only
            logged = trainer.test(module, datamodule=dm, ckpt_path=averaged_everywhere, weights_only=True,
                                  verbose=False)
            result.test_averaged = test_scores(logged, list(references.test), cfg)

    if trainer.is_global_zero:
        atomic_write_text(output_dir / "results.json", json.dumps(asdict(result), indent=2) + "\n")
        summary = [f"stopped by: {result.stopped_by}",
                   f"best validation BLEU: {best_bleu:.2f}" if best_bleu is not None else
                   "best validation BLEU: n/a (no validation checkpoint)", f"best checkpoint: {best}"]
        summary += [f"test {name}: BLEU {s['bleu']:.2f} chrF {s['chrf']:.2f}  {s['bleu_signature']}"
                    for name, s in result.test.items()]
        summary += [f"test {name} (averaged checkpoint): BLEU {s['bleu']:.2f} chrF {s['chrf']:.2f}"
                    for name, s in result.test_averaged.items()]
        print("\n".join(summary), flush=True)
    return result
