"""Alignments and attention heatmaps through the public commands (evaluate.py decode.alignments, mt.plot_attention)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mt.pipeline import train
from mt.translate import Translator
from tests.utils import ROOT, compose_train, run_module, tiny_overrides

SOURCES = ["A man is riding a bicycle.", "", "Two dogs play in the snow."]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("align")
    return Path(train(compose_train(tiny_overrides("lstm", tmp / "run", tmp / "cache") + ["test_after_fit=false"])
                      ).last_checkpoint)


def test_evaluate_writes_one_alignment_line_per_sentence(ckpt, tmp_path):
    (tmp_path / "src.txt").write_text("\n".join(SOURCES) + "\n")
    r = run_module("evaluate", f"ckpt={ckpt}", f"input={tmp_path / 'src.txt'}", f"output={tmp_path / 'hyp.txt'}",
                   "decode.alignments=true", f"hydra.run.dir={tmp_path / 'ev'}", script=ROOT / "evaluate.py")
    assert r.returncode == 0, r.stderr[-2000:]
    hyps = (tmp_path / "hyp.txt").read_text().splitlines()
    links = (tmp_path / "ev" / "alignments.input.txt").read_text().splitlines()
    assert len(links) == len(SOURCES) == len(hyps)
    tok = Translator.from_checkpoint(ckpt, device="cpu").tokenizer
    for source, hyp, line in zip(SOURCES, hyps, links, strict=True):
        n_src, n_tgt = len(tok.encode([source])[0]), len(tok.encode([hyp])[0])
        pairs = [tuple(map(int, p.split("-"))) for p in line.split()]
        assert [j for _, j in pairs] == list(range(n_tgt)) if n_src else pairs == []  # one link per target subword
        assert all(0 <= i < n_src for i, _ in pairs)


def test_plot_attention_draws_a_png(ckpt, tmp_path):
    out = tmp_path / "att.png"
    r = run_module("mt.plot_attention", f"ckpt={ckpt}", "text=A man is riding a bicycle.", f"out={out}",
                   f"hydra.run.dir={tmp_path / 'run'}")
    assert r.returncode == 0, r.stderr[-2000:]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"heatmap: {out}" in r.stdout
    r = run_module("mt.plot_attention", f"ckpt={ckpt}", "text= ", f"hydra.run.dir={tmp_path / 'run2'}")
    assert r.returncode == 2 and "text= is empty" in r.stderr
