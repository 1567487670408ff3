"""Wait-k through the public commands: train.wait_k (multi-path) trains and validates with wait-k decoding;
evaluate.py decode=wait_k prints BLEU, chrF and AL/LAAL/DAL and writes them to metrics.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mt.pipeline import train
from tests.utils import ROOT, SHARED_DATA, compose_train, tiny_overrides


def _evaluate(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MT_DATA_DIR": str(SHARED_DATA), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, str(ROOT / "evaluate.py"), *args], capture_output=True, env=env, cwd=ROOT,
                          timeout=300)


@pytest.fixture(scope="module")
def wait_k_ckpt(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("waitk")
    overrides = tiny_overrides("lstm", tmp / "run", tmp / "cache") + [
        "model.bidirectional=false", "train.wait_k=3", "train.wait_k_multipath=true", "decode=wait_k",
        "decode.wait_k=2", "test_after_fit=false"]
    result = train(compose_train(overrides))
    assert result.best_bleu is not None  # validation decoded with wait-k and scored
    return Path(result.last_checkpoint)


@pytest.mark.parametrize("beam", [1, 2])
def test_evaluate_wait_k_reports_latency(wait_k_ckpt, tmp_path, beam):
    r = _evaluate(f"ckpt={wait_k_ckpt}", f"hydra.run.dir={tmp_path}", "decode=wait_k", "decode.wait_k=3",
                  f"decode.beam_size={beam}", "+data.limit=40", f"paths.cache_dir={tmp_path / 'cache'}")
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    out = r.stdout.decode()
    assert "BLEU" in out and "chrF" in out and "AL" in out and "LAAL" in out and "DAL" in out
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    (latency,) = metrics["latency"].values()
    for unit in ("subword", "word"):
        lat = latency[unit]
        assert lat["n_scored"] + lat["n_skipped"] == 40 and lat["n_scored"] > 0
        # an untrained model over-generates: AL (reference length) may be negative, LAAL >= AL cannot be
        assert lat["laal"] >= lat["al"] and lat["laal"] > 0 and lat["dal"] > 0
    assert metrics["decode"]["policy"] == "wait_k"


def test_full_sentence_model_decodes_with_wait_k_by_re_encoding(tmp_path):
    result = train(compose_train(tiny_overrides("transformer", tmp_path / "run", tmp_path / "cache") +
                                 ["trainer.max_steps=3", "test_after_fit=false"]))
    r = _evaluate(f"ckpt={result.last_checkpoint}", f"hydra.run.dir={tmp_path / 'ev'}", "decode=wait_k",
                  "decode.beam_size=1", "+data.limit=20", f"paths.cache_dir={tmp_path / 'cache'}")
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    assert "latency (source subwords): AL" in r.stdout.decode()
