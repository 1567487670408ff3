"""Optimizer and learning-rate schedule built from the ``optim`` config group (one home for both)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import nn

from mt.schedule import LRSchedule

OptimizerFactory = Callable[[nn.Module], torch.optim.Optimizer]


def adamw(model: nn.Module, *, lr: float, betas: list[float], eps: float, weight_decay: float,
          implementation: str = "foreach") -> torch.optim.AdamW:
    """AdamW over ``model``'s trainable parameters; matrices decay, biases/norms/1-D parameters do not.

    implementation: ``foreach`` (multi-tensor kernels), ``fused`` (one fused kernel, CUDA and CPU) or
    ``loop`` (one parameter at a time, PyTorch's CPU default).
    """
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() <= 1]
    kind = {"foreach": {"foreach": True}, "fused": {"fused": True}, "loop": {"foreach": False}}
    if implementation not in kind:
        raise ValueError(f"optim.implementation={implementation!r} is unknown; use {', '.join(kind)}")
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=lr, betas=tuple(betas), eps=eps, **kind[implementation])


def optimizer_factory(optim: dict) -> OptimizerFactory:
    """``model -> AdamW`` with the settings of an ``optim`` config node."""
    return partial(adamw, lr=float(optim["lr"]), betas=list(optim["betas"]), eps=float(optim["eps"]),
                   weight_decay=float(optim["weight_decay"]), implementation=str(optim["implementation"]))


def schedule_from(optim: dict) -> LRSchedule:
    """The learning-rate multiplier of an ``optim`` config node."""
    return LRSchedule(optim["schedule"], optim["warmup_steps"], optim["lr"], optim["min_lr"],
                      optim["plateau_factor"], optim["plateau_patience"])
