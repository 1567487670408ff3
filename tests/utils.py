"""Helpers for tests that run the real pipeline on tiny models and a slice of the real Multi30k."""

from __future__ import annotations

import os
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
SHARED_DATA = Path(os.environ.get("MT_DATA_DIR", ROOT.parent / "shared" / "data")).resolve()

TINY = {
    "transformer": ["model=transformer", "model.d_model=32", "model.n_heads=2", "model.ffn_dim=64",
                    "model.encoder_layers=1", "model.decoder_layers=1"],
    "lstm": ["model=lstm", "model.embed_dim=32", "model.encoder_hidden=32", "model.decoder_hidden=64",
             "model.encoder_layers=1", "model.decoder_layers=1"],
}


def tiny_overrides(arch: str, out: Path, cache: Path, limit: int = 200) -> list[str]:
    """Overrides for a seconds-long real run: tiny model, a Multi30k slice, CPU, CSV logs only."""
    return TINY[arch] + [
        f"paths.data_dir={SHARED_DATA}", f"paths.cache_dir={cache}", f"paths.output_dir={out}",
        f"data.limit={limit}", "data.tokenizer.vocab_size=300", "data.tokenizer.hard_vocab_limit=false",
        "data.max_tokens=800", "decode.beam_size=2", "decode.max_len_a=1.0", "decode.max_len_b=5",
        "trainer.accelerator=cpu", "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
        "trainer.log_every_n_steps=1", "logger=csv", "optim.warmup_steps=10",
    ]


def compose_train(overrides: list[str]) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)
