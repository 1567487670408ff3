"""Helpers for tests that run the real pipeline on tiny models and a slice of the real Multi30k."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from omegaconf import DictConfig

from mt.config import compose

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
    """conf/train.yaml composed with ``overrides``, as train.py would."""
    return compose("train", overrides)


# Seconds-sized benchmark settings (python -m mtlab.bench overrides without the model sizes).
TINY_BENCH = [
    "threads=1", "throughput.synthetic_batch=8", "throughput.synthetic_length=16", "throughput.warmup=1",
    "throughput.steps=2", "throughput.repeats=1", "throughput.peak_matmul_size.cpu=256", "memory.lengths=[16,32,64,128]", "decoding.max_sentences=30",
    "decoding.single_sentences=4", "decoding.latency_positions=12", "decoding.latency_repeats=1",
    "decoding.latency_at=8", "decoding.random_output_tokens=4", "throughput.sources=[synthetic,real]",
    "streaming.lengths=[8,24]", "streaming.window=4",
]
TINY_DATA = ["data.limit=200", "data.tokenizer.vocab_size=300", "data.tokenizer.hard_vocab_limit=false",
             "data.max_tokens=800"]


def tiny_model_overrides(extra: dict[str, list[str]] | None = None) -> list[str]:
    """tests/utils.py TINY model sizes (+ ``extra[arch]``) as mtlab.bench ``+model_overrides.<preset>=[...]``."""
    own = {arch: [o for o in opts if o.startswith("model.")] + (extra or {}).get(arch, []) for arch, opts in TINY.items()}
    return [f'+model_overrides.{arch}=[{",".join(chr(34) + o + chr(34) for o in opts)}]' for arch, opts in own.items()]


def run_module(module: str, *args: str, timeout: int = 300, script: Path | None = None
               ) -> subprocess.CompletedProcess:
    """``python -m module args`` (or ``python script args``) offline, one thread, from the repository root."""
    env = {**os.environ, "MT_DATA_DIR": str(SHARED_DATA), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": "1"}
    command = [str(script)] if script else ["-m", module]
    return subprocess.run([sys.executable, *command, *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=timeout)
