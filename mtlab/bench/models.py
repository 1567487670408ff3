"""What each benchmarked preset is built from: its conf/ presets, or the config a checkpoint was trained with."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from mt.checkpoint import load_checkpoint
from mt.errors import MTError
from mt.models import Seq2Seq, build_model
from mt.module import TranslationModule
from mt.tokenizer import Tokenizer
from mt.translate import model_from_checkpoint

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def load_option(group: str, name: str) -> DictConfig:
    """conf/<group>/<name>.yaml with its defaults list merged in, as Hydra composes ``group=name``."""
    path = CONF_DIR / group / f"{name}.yaml"
    if not path.is_file():
        available = ", ".join(sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml")))
        raise MTError(f"{group}={name}: there is no {path}; available: {available}")
    own = OmegaConf.load(path)
    defaults = list(own.pop("defaults", []))
    if "_self_" not in defaults:
        defaults.append("_self_")  # Hydra's rule for configs other than the primary one
    merged = OmegaConf.create()
    for entry in defaults:
        merged = OmegaConf.merge(merged, own if entry == "_self_" else load_option(group, str(entry)))
    return merged


@dataclass
class ModelSpec:
    """One benchmarked preset: model, optimizer and loss settings, and the checkpoint they came from."""

    preset: str
    model: DictConfig  # the model node (``_target_`` and constructor arguments)
    optim: DictConfig  # the optimizer node paired with it (conf/optim/<preset>.yaml or the checkpoint's)
    train: DictConfig  # the train node (label smoothing, ...)
    gradient_clip: float  # max gradient norm, as conf/trainer/default.yaml sets for training
    ckpt: str | None  # trained weights (decoding uses them); None = random initialisation

    def accepts(self, argument: str) -> bool:
        """Whether the model's constructor takes ``argument`` (e.g. attention_impl)."""
        return argument in inspect.signature(get_class(self.model._target_)).parameters

    def build(self, vocab_size: int, seed: int, **changes: object) -> Seq2Seq:
        """A randomly initialised model (seeded), with ``changes`` applied to its config."""
        torch.manual_seed(seed)
        return build_model(OmegaConf.merge(self.model, changes), vocab_size)

    def module(self, vocab_size: int, decode_cfg: DictConfig, data_cfg: DictConfig, seed: int
               ) -> TranslationModule:
        """The pipeline's LightningModule around a freshly initialised (seeded) model."""
        torch.manual_seed(seed)
        return TranslationModule(self.model, self.optim, self.train, decode_cfg, data_cfg, vocab_size)

    def trained(self) -> tuple[Seq2Seq, Tokenizer] | None:
        """The checkpoint's model (eval mode) and tokenizer; None without a checkpoint."""
        if self.ckpt is None:
            return None
        return model_from_checkpoint(load_checkpoint(self.ckpt), self.ckpt)


def model_specs(cfg: DictConfig) -> dict[str, ModelSpec]:
    """Specs of ``cfg.models`` in order; ``cfg.ckpts[preset]`` supplies a trained checkpoint's own config."""
    train_defaults = OmegaConf.load(CONF_DIR / "train.yaml").train
    clip = float(OmegaConf.load(CONF_DIR / "trainer" / "default.yaml").gradient_clip_val)
    unknown = sorted(set(cfg.ckpts or {}) - set(cfg.models)) + sorted(set(cfg.model_overrides or {}) - set(cfg.models))
    if unknown:
        raise MTError(f"ckpts/model_overrides name {', '.join(unknown)}, which are not in models={list(cfg.models)}")
    specs = {}
    for preset in cfg.models:
        ckpt = (cfg.ckpts or {}).get(preset)
        if ckpt:
            hp = load_checkpoint(ckpt)["hyper_parameters"]
            model, optim, train = (OmegaConf.create(hp[k]) for k in ("model", "optim", "train"))
        else:
            model, optim, train = load_option("model", preset), load_option("optim", preset), train_defaults
        model = OmegaConf.merge(model, (cfg.model_overrides or {}).get(preset) or {})
        specs[preset] = ModelSpec(preset, model, optim, train, clip, str(ckpt) if ckpt else None)
    return specs
