"""Two-process DDP on CPU (gloo) through train.py: training runs, and evaluation is exact under DDP."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

from tests.utils import ROOT, SHARED_DATA, tiny_overrides


def run(script: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "MT_DATA_DIR": str(SHARED_DATA), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, str(ROOT / script), *args], capture_output=True, env=env,
                          cwd=ROOT, timeout=timeout)


@pytest.mark.slow
def test_ddp_two_cpu_processes_exact_evaluation(tmp_path):
    out, cache = tmp_path / "run", tmp_path / "cache"
    overrides = [o for o in tiny_overrides("transformer", out, cache, limit=150) if not o.startswith("paths.output_dir")]
    r = run("train.py", *overrides, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
            "trainer.max_epochs=2", f"hydra.run.dir={out}")
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    result = json.loads((out / "results.json").read_text())
    with open(out / "csv" / "version_0" / "metrics.csv") as f:
        val_bleu = [float(row["val/bleu"]) for row in csv.DictReader(f) if row.get("val/bleu")]
    assert len(val_bleu) == 2 and result["test"]["test_2016_flickr"]["n_sentences"] == 150

    # The same checkpoints scored by a single process with evaluate.py must give the same numbers.
    last = out / "checkpoints" / "last.ckpt"
    ev = run("evaluate.py", f"ckpt={last}", "split=validation", "decode.beam_size=2", "decode.max_len_a=1.0",
             "decode.max_len_b=5", f"hydra.run.dir={tmp_path / 'ev'}", f"paths.cache_dir={cache}")
    assert ev.returncode == 0, ev.stderr.decode()[-3000:]
    single = json.loads((tmp_path / "ev" / "metrics.json").read_text())["scores"]["validation"]
    assert single["n_sentences"] == 150
    assert single["bleu"] == pytest.approx(val_bleu[-1], abs=1e-6)

    ev = run("evaluate.py", f"ckpt={result['best_checkpoint']}", "decode.beam_size=2", "decode.max_len_a=1.0",
             "decode.max_len_b=5", f"hydra.run.dir={tmp_path / 'ev2'}", f"paths.cache_dir={cache}")
    assert ev.returncode == 0, ev.stderr.decode()[-3000:]
    single = json.loads((tmp_path / "ev2" / "metrics.json").read_text())["scores"]["test_2016_flickr"]
    assert single["bleu"] == pytest.approx(result["test"]["test_2016_flickr"]["bleu"], abs=1e-6)
