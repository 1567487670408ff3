"""Test-only fault injection, added to a real run through Hydra config (callbacks are instantiated from it):

    python train.py ... +callbacks.fail._target_=tests.faults.FailOnRank +callbacks.fail.rank=1 +callbacks.fail.step=3

``SlowCheckpointWrites`` (checkpoint files written in chunks with pauses, so that a kill lands inside a write) lives
in :mod:`mtlab.soak`, which uses it too; it is re-exported here.
"""

from __future__ import annotations

import os
from typing import Any

from lightning.pytorch.callbacks import Callback

from mtlab.soak import SlowCheckpointWrites

__all__ = ["FailOnRank", "InjectedFault", "SlowCheckpointWrites"]


class InjectedFault(RuntimeError):
    """The error FailOnRank raises (a plain RuntimeError: a bug, not a user mistake)."""


class FailOnRank(Callback):
    """Raise :class:`InjectedFault` on global rank ``rank`` when training step ``step`` starts (0-based).

    ``at="init"`` raises while the callback is built instead (on the rank whose ``LOCAL_RANK`` is ``rank``), i.e.
    before that rank joins the process group, where the other ranks wait for it.
    """

    def __init__(self, rank: int = 0, step: int = 0, at: str = "step", message: str = "injected fault") -> None:
        if at not in ("step", "init"):
            raise ValueError(f"at={at!r}: use step or init")
        self.rank, self.step, self.at, self.message = int(rank), int(step), at, message
        if at == "init" and int(os.environ.get("LOCAL_RANK", 0)) == self.rank:
            raise InjectedFault(f"{message} on rank {self.rank} before joining the process group")

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if self.at == "step" and trainer.global_rank == self.rank and trainer.global_step >= self.step:
            raise InjectedFault(f"{self.message} on rank {self.rank} at step {trainer.global_step}")
