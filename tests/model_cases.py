"""Tiny models of every preset and variant, and random inputs: shared by the model, visibility and search tests."""

from __future__ import annotations

from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from mt.batch import BOS_ID, EOS_ID, PAD_ID
from mt.models import Seq2Seq, build_model

MODEL_CONF = Path(__file__).resolve().parents[1] / "conf" / "model"
VOCAB = 23
TINY = {
    "lstm": {"embed_dim": 12, "encoder_hidden": 8, "encoder_layers": 2, "decoder_hidden": 16, "decoder_layers": 2},
    "transformer": {"d_model": 16, "n_heads": 4, "ffn_dim": 24, "encoder_layers": 2, "decoder_layers": 2,
                    "max_positions": 64},
    # chunk_size 4: sequences of 5-7 positions run as several chunks, the last one padded
    "linear_transformer": {"d_model": 16, "n_heads": 4, "ffn_dim": 24, "encoder_layers": 2, "decoder_layers": 2,
                           "max_positions": 64, "chunk_size": 4},
    "hybrid": {"d_model": 12, "n_heads": 3, "ffn_dim": 24, "encoder_layers": 2, "decoder_hidden": 16,
               "decoder_layers": 2, "max_positions": 64},
}
PRESETS = ["lstm", "transformer", "linear_transformer", "hybrid"]  # the Multi30k-size presets
# variant -> (preset, overrides); dot attention needs decoder_hidden == 2 * encoder_hidden (16 == 2 * 8)
VARIANTS = {
    "lstm": ("lstm", {}),
    "lstm_input_feeding": ("lstm", {"input_feeding": True}),
    "lstm_dot_untied": ("lstm", {"attention": "dot", "tie_output": False}),
    "lstm_additive_feeding_unshared": ("lstm", {"attention": "additive", "input_feeding": True,
                                                "share_embeddings": False}),
    "transformer_pre_norm": ("transformer", {"pre_norm": True}),
    "transformer_post_norm": ("transformer", {"pre_norm": False}),
    "transformer_unshared": ("transformer", {"share_embeddings": False}),
    "transformer_uncached": ("transformer", {}),
    "linear_transformer": ("linear_transformer", {}),
    "linear_transformer_linear_cross": ("linear_transformer", {"cross_attention": "linear"}),
    "linear_transformer_post_norm_unshared_math": ("linear_transformer", {"pre_norm": False, "share_embeddings": False,
                                                                          "attention_impl": "math"}),
    "linear_transformer_uncached": ("linear_transformer", {}),
    "hybrid": ("hybrid", {}),
    "hybrid_feeding_additive_untied": ("hybrid", {"input_feeding": True, "attention": "additive",
                                                  "tie_output": False, "share_embeddings": False}),
    "hybrid_no_bridge": ("hybrid", {"bridge": "none"}),  # the preset starts from the mean of the memory
}
# the family and decoder state each preset declares
TRAITS = {"lstm": ("recurrent", "constant"), "transformer": ("transformer", "growing"),
          "linear_transformer": ("linear_transformer", "constant"), "hybrid": ("hybrid", "constant")}


def load_preset(name: str) -> DictConfig:
    """Compose conf/model/<name>.yaml with its defaults list resolved (as Hydra does for model=<name>)."""
    with initialize_config_dir(config_dir=str(MODEL_CONF), version_base="1.3"):
        return compose(config_name=name)


def tiny_model(variant: str, seed: int = 0) -> Seq2Seq:
    """A tiny eval-mode model of the variant, built from the preset yaml with small sizes."""
    preset, overrides = VARIANTS[variant]
    cfg = load_preset(preset)
    cfg.update({**TINY[preset], **overrides})
    torch.manual_seed(seed)
    return build_model(cfg, VOCAB).eval()


def init_state(model: Seq2Seq, enc, variant: str):
    """The decoder state of ``variant`` (its decoding variant, e.g. uncached, when the name says so)."""
    return model.init_state(enc, "uncached" if variant.endswith("uncached") else None)


def make_src(lengths: list[int], pad_to: int | None = None, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Random EOS-terminated, PAD-padded sources (B, S) and their lengths (B,)."""
    g = torch.Generator().manual_seed(seed)
    width = pad_to or max(lengths)
    src = torch.full((len(lengths), width), PAD_ID, dtype=torch.long)
    for i, n in enumerate(lengths):
        src[i, : n - 1] = torch.randint(4, VOCAB, (n - 1,), generator=g)
        src[i, n - 1] = EOS_ID
    return src, torch.tensor(lengths)


def make_tgt_in(batch: int, length: int, seed: int = 2) -> torch.Tensor:
    """Random BOS-initial target prefixes (B, T)."""
    g = torch.Generator().manual_seed(seed)
    tgt = torch.randint(4, VOCAB, (batch, length), generator=g)
    tgt[:, 0] = BOS_ID
    return tgt


def step_all(model: Seq2Seq, src: torch.Tensor, lengths: torch.Tensor, tgt_in: torch.Tensor,
             variant: str = "") -> torch.Tensor:
    """Logits (B, T, V) from stepping the decoder one token at a time."""
    state = init_state(model, model.encode(src, lengths), variant)
    logits = []
    for t in range(tgt_in.size(1)):
        out, state = model.step(tgt_in[:, t], state)
        logits.append(out)
    return torch.stack(logits, dim=1)
