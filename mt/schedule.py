"""Learning-rate schedules as one picklable-free callable for torch's LambdaLR.

LambdaLR stores a callable object's ``__dict__`` in its state dict, so every field here is plain data and
checkpoints stay loadable with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import math


class LRSchedule:
    """Multiplier on the peak rate: linear warmup, then ``inverse_sqrt``, ``constant``, ``plateau`` or ``linear``.

    ``linear`` decays the rate linearly to ``min_lr`` at the end of the training budget (budgeted training, Li et
    al. 2020): ``progress``, the fraction of the budget spent, is set after every step by :meth:`set_progress`. In
    a 12-minute Multi30k sweep it lost to ``inverse_sqrt`` (docs/sweeps/transformer.md). ``plateau`` keeps the
    rate constant after warmup and multiplies it by ``factor`` each time the validation metric has not improved
    for ``patience`` validations (see :meth:`observe`).
    """

    KINDS = ("inverse_sqrt", "constant", "plateau", "linear")

    def __init__(self, kind: str, warmup_steps: int, lr: float, min_lr: float,
                 factor: float, patience: int) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"optim.schedule={kind!r} is unknown; use {', '.join(self.KINDS)}")
        self.kind = kind
        self.warmup_steps = max(0, int(warmup_steps))
        self.min_scale = min_lr / lr if lr > 0 else 0.0
        self.factor = factor
        self.patience = patience
        self.scale = 1.0  # plateau decay so far
        self.best = -math.inf
        self.bad_rounds = 0
        self.progress = 0.0  # linear: fraction of the training budget spent

    def __call__(self, step: int) -> float:
        step = step + 1  # LambdaLR counts from 0
        if step <= self.warmup_steps:
            warm = step / self.warmup_steps
            # linear: the decay caps the ramp, so a short budget partly spent in warmup has no drop when it ends
            return min(warm, 1.0 - self.progress) if self.kind == "linear" else warm
        if self.kind == "inverse_sqrt":
            decay = math.sqrt(max(1, self.warmup_steps) / step)
        elif self.kind == "linear":
            decay = 1.0 - self.progress
        else:
            decay = self.scale  # 1.0 for constant
        return max(self.min_scale, decay)

    def set_progress(self, fraction: float) -> None:
        """Record the fraction of the training budget spent (``linear``; the others ignore it)."""
        self.progress = min(1.0, max(0.0, float(fraction)))

    def observe(self, metric: float) -> bool:
        """Record a validation metric (higher is better); return True when the rate was just reduced."""
        if self.kind != "plateau":
            return False
        if metric > self.best:
            self.best, self.bad_rounds = metric, 0
            return False
        self.bad_rounds += 1
        if self.bad_rounds > self.patience:
            self.scale *= self.factor
            self.bad_rounds = 0
            return True
        return False
