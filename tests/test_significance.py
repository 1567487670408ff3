"""Paired bootstrap significance (sacreBLEU): the library function and evaluate.py compare_with= on two tiny systems."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mt.errors import MTError
from mt.evaluate import paired_significance
from mt.pipeline import train
from tests.utils import ROOT, SHARED_DATA, compose_train, tiny_overrides


def references(n: int = 200) -> list[str]:
    with gzip.open(SHARED_DATA / "multi30k" / "test_2016_flickr.de.gz", "rt", encoding="utf-8") as f:
        return f.read().splitlines()[:n]


def test_clearly_better_system_is_significant_with_confidence_intervals():
    refs = references()
    good = [" ".join(r.split()[:-1]) for r in refs]  # drops one word per sentence
    bad = [" ".join(r.split()[: len(r.split()) // 2]) for r in refs]  # keeps half of each sentence
    sig = paired_significance(good, bad, refs, n_samples=200, tgt_lang="de")
    assert set(sig.metrics) == {"BLEU", "chrF2"} and sig.n_sentences == 200 and sig.n_samples == 200
    bleu = sig.metrics["BLEU"]
    assert bleu.a.score > bleu.b.score + 10
    assert bleu.p_value < 0.05
    for est in (bleu.a, bleu.b):
        assert 0 < est.ci < 10 and abs(est.mean - est.score) < est.ci  # the 95% CI is mean ± ci
    assert "bs:200" in bleu.signature and "seed:" in bleu.signature and "tok:13a" in bleu.signature
    assert json.loads(json.dumps(sig.as_dict()))["metrics"]["BLEU"]["p_value"] == bleu.p_value
    assert "p = " in str(sig)


def test_small_difference_is_not_significant_and_inputs_are_checked():
    refs = references()
    a = [" ".join(r.split()[:-1]) for r in refs]
    b = list(a)
    b[0] = refs[0]  # one sentence differs
    assert paired_significance(a, b, refs, n_samples=200, tgt_lang="de").metrics["BLEU"].p_value > 0.05
    with pytest.raises(MTError, match="199 hypotheses of B") as e:
        paired_significance(a, b[:-1], refs, tgt_lang="de")
    assert "\n" not in str(e.value)


@pytest.fixture(scope="module")
def two_systems(tmp_path_factory) -> tuple[Path, Path]:
    """Two tiny systems trained on the same slice: a Transformer and an LSTM."""
    tmp = tmp_path_factory.mktemp("sig")
    ckpts = []
    for arch in ("transformer", "lstm"):
        result = train(compose_train(tiny_overrides(arch, tmp / arch, tmp / "cache") + ["test_after_fit=false"]))
        ckpts.append(Path(result.last_checkpoint))
    return ckpts[0], ckpts[1]


def test_evaluate_compare_with_reports_paired_bootstrap(two_systems, tmp_path):
    a, b = two_systems
    env = {**os.environ, "MT_DATA_DIR": str(SHARED_DATA), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([sys.executable, str(ROOT / "evaluate.py"), f"ckpt={a}", f"compare_with={b}",
                        f"hydra.run.dir={tmp_path}", "+data.limit=100", "decode.beam_size=1",
                        "significance_samples=200", f"paths.cache_dir={tmp_path / 'cache'}"],
                       capture_output=True, env=env, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    assert "p = " in r.stdout.decode() and "bs:200" in r.stdout.decode()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["compare_with"] == str(b)
    sig = metrics["significance"]["test_2016_flickr"]
    assert sig["n_sentences"] == 100 and 0 < sig["metrics"]["BLEU"]["p_value"] <= 1
    assert sig["metrics"]["chrF2"]["a"]["score"] == pytest.approx(metrics["scores"]["test_2016_flickr"]["chrf"])
    assert len((tmp_path / "hyps.test_2016_flickr.B.txt").read_text(encoding="utf-8").splitlines()) == 100


def test_evaluate_compare_hyps_tests_another_systems_translations(two_systems, tmp_path):
    """compare_hyps=FILE: an outside system's output (here the references themselves: a perfect system B)."""
    a, _ = two_systems
    env = {**os.environ, "MT_DATA_DIR": str(SHARED_DATA), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    common = [sys.executable, str(ROOT / "evaluate.py"), f"ckpt={a}", "+data.limit=100", "decode.beam_size=1",
              "significance_samples=200", f"paths.cache_dir={tmp_path / 'cache'}"]
    perfect = tmp_path / "peer.de"
    perfect.write_text("\n".join(references(100)) + "\n", encoding="utf-8")
    r = subprocess.run([*common, f"compare_hyps={perfect}", f"hydra.run.dir={tmp_path / 'ok'}"],
                       capture_output=True, env=env, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    assert f"compare_hyps={perfect}" in r.stdout.decode()
    metrics = json.loads((tmp_path / "ok" / "metrics.json").read_text())
    sig = metrics["significance"]["test_2016_flickr"]["metrics"]["BLEU"]
    assert metrics["compare_hyps"] == str(perfect) and sig["b"]["score"] == pytest.approx(100.0)
    assert sig["p_value"] < 0.05 and not (tmp_path / "ok" / "hyps.test_2016_flickr.B.txt").exists()

    short = tmp_path / "short.de"
    short.write_text("\n".join(references(99)) + "\n", encoding="utf-8")
    for extra, message in (([f"compare_hyps={short}"], "has 99 lines but split test_2016_flickr has 100"),
                           ([f"compare_hyps={perfect}", f"compare_with={a}"], "not both")):
        out = tmp_path / f"bad{len(extra)}"
        r = subprocess.run([*common, *extra, f"hydra.run.dir={out}"], capture_output=True, env=env, cwd=ROOT,
                           timeout=300)
        err = r.stderr.decode().strip()
        assert r.returncode != 0 and message in err and "Traceback" not in err, err[-2000:]
        assert not (out / "hyps.test_2016_flickr.txt").exists()  # refused before translating anything
