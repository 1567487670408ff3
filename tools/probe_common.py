"""What tools/age_probe.py and tools/drift_probe.py share: the first training batches and a bare training step."""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from mt.api import TranslationDataModule, autocast_for, batch_loss


def first_batches(cfg: DictConfig, n: int) -> tuple[TranslationDataModule, list]:
    """The data module of ``cfg`` (prepared and set up) and its first ``n`` training batches."""
    dm = TranslationDataModule(cfg.data, cfg.paths, seed=int(cfg.seed))
    dm.prepare_data()
    dm.setup()
    batches = []
    for batch in dm.train_dataloader():
        batches.append(batch)
        if len(batches) == n:
            break
    return dm, batches


def train_step(model: torch.nn.Module, optimizer, schedule, batch, cfg: DictConfig) -> int:
    """One training step as the pipeline takes it (bf16 autocast, clipping, AdamW, schedule); its target tokens."""
    with autocast_for(torch.device("cpu"), "bf16-mixed"):
        loss_sum, _ = batch_loss(model, batch, float(cfg.train.label_smoothing), cfg.train.loss_chunk)
        loss = loss_sum / batch.n_tgt_tokens
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), float(cfg.trainer.gradient_clip_val))
    optimizer.step()
    schedule.step()
    optimizer.zero_grad(set_to_none=True)
    return batch.n_tgt_tokens
