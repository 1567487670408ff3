"""What each benchmarked preset is built from: ``train.py``'s own composed config, or a checkpoint's."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from omegaconf import DictConfig, OmegaConf

from mt.api import (
    MTError,
    Seq2Seq,
    Tokenizer,
    TranslationModule,
    build_model,
    build_module,
    compose,
    load_checkpoint,
    model_from_checkpoint,
)

# The data settings that shape training batches. A preset's own (set by its overrides or recorded in its
# checkpoint) replace the benchmark data's for its real-batch throughput; the corpus and tokenizer stay the bench's.
BATCHING = ("max_len", "max_len_ratio", "max_tokens", "bucket_width")


@dataclass
class ModelSpec:
    """One benchmarked preset: the train config it trains with, and the checkpoint its weights come from."""

    preset: str
    cfg: DictConfig  # conf/train.yaml composed with model=<preset> and the overrides (or the checkpoint's nodes)
    ckpt: str | None  # trained weights (decoding uses them); None = random initialisation
    batching: dict = field(default_factory=dict)  # its own BATCHING settings (over the bench data's); {} = none

    @property
    def gradient_clip(self) -> float:
        return float(self.cfg.trainer.gradient_clip_val)

    @property
    def label_smoothing(self) -> float:
        return float(self.cfg.train.label_smoothing)

    @property
    def loss_chunk(self) -> int | None:
        """Target tokens per block of the fused projection + loss (None: the whole logits at once)."""
        chunk = self.cfg.train.get("loss_chunk")  # checkpoints from before the option: None
        return None if chunk is None else int(chunk)

    def build(self, vocab_size: int, seed: int, **changes: object) -> Seq2Seq:
        """A randomly initialised model (seeded), with ``changes`` applied to its config."""
        torch.manual_seed(seed)
        return build_model(OmegaConf.merge(self.cfg.model, changes), vocab_size)

    def module(self, vocab_size: int, seed: int) -> TranslationModule:
        """The pipeline's LightningModule around a freshly initialised (seeded) model, for training only."""
        torch.manual_seed(seed)
        return build_module(self.cfg, vocab_size)

    def trained(self) -> tuple[Seq2Seq, Tokenizer] | None:
        """The checkpoint's model (eval mode) and tokenizer; None without a checkpoint."""
        if self.ckpt is None:
            return None
        return model_from_checkpoint(load_checkpoint(self.ckpt), self.ckpt)


def model_specs(cfg: DictConfig) -> dict[str, ModelSpec]:
    """Specs of ``cfg.models`` in order, composed as ``train.py model=<preset> <train_overrides>
    <model_overrides[preset]>`` would; ``cfg.ckpts[preset]`` replaces model/optim/train by the checkpoint's.

    ``batching``: the :data:`BATCHING` settings the checkpoint trained with, else those the overrides change."""
    unknown = sorted(set(cfg.ckpts or {}) - set(cfg.models)) + sorted(set(cfg.model_overrides or {}) - set(cfg.models))
    if unknown:
        raise MTError(f"ckpts/model_overrides name {', '.join(unknown)}, which are not in models={list(cfg.models)}")
    specs = {}
    for preset in cfg.models:
        overrides = [f"model={preset}", *map(str, cfg.train_overrides or []),
                     *map(str, (cfg.model_overrides or {}).get(preset) or [])]
        composed = compose("train", overrides)
        default = compose("train", [f"model={preset}"]).data
        batching = {k: composed.data[k] for k in BATCHING if composed.data[k] != default[k]}
        ckpt = (cfg.ckpts or {}).get(preset)
        if ckpt:
            hp = load_checkpoint(ckpt)["hyper_parameters"]
            composed = OmegaConf.merge(composed, {k: hp[k] for k in ("model", "optim", "train")})
            batching = {k: hp["data"][k] for k in BATCHING if k in hp.get("data", {})}
        specs[preset] = ModelSpec(preset, composed, str(ckpt) if ckpt else None, batching)
    return specs
