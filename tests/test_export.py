"""python -m mt.export: hub-style safetensors folder and CTranslate2 model; loading without the checkpoint, parity.

The CTranslate2 parity tests use (a) the tiny Transformer trained for a few steps below (its greedy outputs are
repetitive but run to the per-sentence maximum length, which checks the length limits) and (b) a randomly
initialised post-norm Transformer with separate embeddings (source-dependent outputs, checks the weight mapping
of every layer). Both compare greedy outputs on 250 Multi30k test sentences in fp32.
"""

from __future__ import annotations

import gzip
import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from safetensors import safe_open

from mt.checkpoint import load_checkpoint
from mt.errors import MTError
from mt.export import ExportError
from mt.export.command import export
from mt.export.source import ExportSource, export_config
from mt.metrics import corpus_score
from mt.models import build_model
from mt.pipeline import train
from mt.translate import Translator, model_from_checkpoint
from tests.utils import CONF, ROOT, SHARED_DATA, compose_train, tiny_overrides

GREEDY = {"beam_size": 1, "len_penalty": 0.6, "max_len_a": 1.5, "max_len_b": 10, "min_len": 1, "n_best": 1,
          "max_tokens": 6000, "max_src_len": 1024}
N_PARITY = 250


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A finished tiny training run (its folder: checkpoints/, results.json)."""
    tmp = tmp_path_factory.mktemp("export")
    result = train(compose_train(tiny_overrides("transformer", tmp / "run", tmp / "cache")))
    return Path(result.output_dir)


def export_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="export", overrides=list(overrides))


def parity_sources() -> list[str]:
    with gzip.open(SHARED_DATA / "multi30k" / "test_2016_flickr.en.gz", "rt", encoding="utf-8") as f:
        return f.read().splitlines()[:N_PARITY]


def parity_references() -> list[str]:
    with gzip.open(SHARED_DATA / "multi30k" / "test_2016_flickr.de.gz", "rt", encoding="utf-8") as f:
        return f.read().splitlines()[:N_PARITY]



def test_hf_export_loads_without_checkpoint_and_translates_identically(run, tmp_path, monkeypatch):
    out = export(export_cfg(f"ckpt={run}", f"out={tmp_path / 'hf'}"))
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors", "spm.model"]
    config = json.loads((out / "config.json").read_text())
    assert config["special_ids"] == {"pad": 0, "unk": 1, "bos": 2, "eos": 3}
    assert config["data"]["src"] == "en" and config["data"]["tgt"] == "de"
    assert config["project"]["version"] and config["decode"]["beam_size"] == 2
    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        names, aliases = set(f.keys()), json.loads(f.metadata()["tied_aliases"])
    assert aliases and not set(aliases) & names  # the tied output matrix is stored once

    best = Path(json.loads((run / "results.json").read_text())["best_checkpoint"])
    card = (out / "README.md").read_text()
    test_bleu = json.loads((run / "results.json").read_text())["test"]["test_2016_flickr"]
    assert f"{test_bleu['bleu']:.2f}" in card and "nrefs:1\\|case:mixed" in card and best.name in card

    sources = parity_sources()[:60] + [""]
    expected = Translator.from_checkpoint(best, device="cpu").translate(sources)

    def refuse(*args, **kwargs):
        raise AssertionError("loading an export must not unpickle")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    loaded = Translator.from_pretrained(out, device="cpu")
    assert loaded.tokenizer.vocab_size == config["vocab_size"]
    assert loaded.translate(sources) == expected
    monkeypatch.undo()

    src_file, hyp_file = tmp_path / "src.txt", tmp_path / "hyp.txt"
    src_file.write_text("".join(s + "\n" for s in sources), encoding="utf-8")
    r = subprocess.run([sys.executable, str(ROOT / "evaluate.py"), f"model_dir={out}", f"input={src_file}",
                        f"output={hyp_file}", f"hydra.run.dir={tmp_path / 'ev'}", "decode.beam_size=2",
                        "decode.max_len_a=1.0", "decode.max_len_b=5"],
                       capture_output=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    assert hyp_file.read_text(encoding="utf-8").split("\n")[:-1] == expected


def test_hf_export_refuses_foreign_model_classes_and_damage(run, tmp_path):
    out = export(export_cfg(f"ckpt={run}", f"out={tmp_path / 'hf'}"))
    with pytest.raises(ExportError, match="already holds files"):
        export(export_cfg(f"ckpt={run}", f"out={out}"))
    export(export_cfg(f"ckpt={run}", f"out={out}", "overwrite=true"))
    config = json.loads((out / "config.json").read_text())
    config["model"]["_target_"] = "os.system"
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(ExportError, match="not one of this project's models") as e:
        Translator.from_pretrained(out, device="cpu")
    assert "\n" not in str(e.value)
    export(export_cfg(f"ckpt={run}", f"out={out}", "overwrite=true"))
    weights = out / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ExportError, match="truncated"):
        Translator.from_pretrained(out, device="cpu")


def ct2_greedy_parity(project: Translator, exported: Path) -> tuple[list[str], list[str]]:
    ct2 = Translator.from_pretrained(exported, decode_cfg=GREEDY, device="cpu", threads=1)
    project.decode_cfg, project.search_cfg = GREEDY, ct2.search_cfg
    sources = parity_sources()
    return project.translate(sources), ct2.translate(sources)


def assert_parity(ours: list[str], theirs: list[str]) -> None:
    assert len(ours) == len(theirs) == N_PARITY
    mismatches = [i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b]
    assert not mismatches, f"{len(mismatches)} of {N_PARITY} differ, first {mismatches[0]}: " \
                           f"{ours[mismatches[0]]!r} vs {theirs[mismatches[0]]!r}"
    refs = parity_references()
    assert abs(corpus_score(ours, refs, tgt_lang="de").bleu - corpus_score(theirs, refs, tgt_lang="de").bleu) <= 0.1


def test_ctranslate2_greedy_parity_trained_model(run, tmp_path):
    pytest.importorskip("ctranslate2")
    best = Path(json.loads((run / "results.json").read_text())["best_checkpoint"])
    out = export(export_cfg(f"ckpt={best}", f"out={tmp_path / 'ct2'}", "format=ctranslate2"))
    assert {"model.bin", "mt_config.json", "spm.model", "README.md"} <= {p.name for p in out.iterdir()}
    assert_parity(*ct2_greedy_parity(Translator.from_checkpoint(best, device="cpu"), out))


def test_ctranslate2_greedy_parity_post_norm_separate_embeddings(run, tmp_path):
    pytest.importorskip("ctranslate2")
    from mt.export.ct2 import write_ctranslate2

    path = run / "checkpoints" / "last.ckpt"
    ckpt = load_checkpoint(path)
    _, tokenizer = model_from_checkpoint(ckpt, str(path))
    with initialize_config_dir(config_dir=str(CONF / "model"), version_base="1.3"):
        model_cfg = compose(config_name="transformer", overrides=[
            "d_model=64", "n_heads=4", "ffn_dim=128", "encoder_layers=2", "decoder_layers=2", "pre_norm=false",
            "share_embeddings=false", "max_positions=256"])
    torch.manual_seed(0)
    model = build_model(model_cfg, tokenizer.vocab_size).eval()
    ckpt["hyper_parameters"]["model"] = dict(model_cfg)
    src = ExportSource(model, tokenizer, export_config(ckpt, model, tokenizer, path), path)
    out = write_ctranslate2(src, tmp_path / "ct2")
    ours, theirs = ct2_greedy_parity(Translator(model, tokenizer, GREEDY), out)
    assert len(set(ours)) > 50  # random weights, yet source-dependent outputs
    assert_parity(ours, theirs)


def test_ctranslate2_int8_and_engine_errors(run, tmp_path):
    pytest.importorskip("ctranslate2")
    out = export(export_cfg(f"ckpt={run}", f"out={tmp_path / 'int8'}", "format=ctranslate2", "quantization=int8"))
    assert json.loads((out / "mt_config.json").read_text())["ctranslate2"]["quantization"] == "int8"
    hyps = Translator.from_pretrained(out, device="cpu").translate(["A dog runs.", "", "Two men talk."])
    assert len(hyps) == 3 and hyps[1] == "" and hyps[0]
    with pytest.raises(ExportError, match="engine=torch cannot run") as e:
        Translator.from_pretrained(out, engine="torch")
    assert "\n" not in str(e.value)
    hf = export(export_cfg(f"ckpt={run}", f"out={tmp_path / 'hf'}"))
    with pytest.raises(ExportError, match="engine=ctranslate2 cannot run"):
        Translator.from_pretrained(hf, engine="ctranslate2")
    with pytest.raises(ExportError, match="quantization= applies to format=ctranslate2 only"):
        export(export_cfg(f"ckpt={run}", f"out={tmp_path / 'x'}", "quantization=int8"))


@pytest.mark.parametrize("preset", ["lstm", "hybrid"])
def test_models_ctranslate2_cannot_represent_are_one_line_errors(run, tmp_path, preset):
    pytest.importorskip("ctranslate2")
    from mt.export.ct2 import write_ctranslate2

    path = run / "checkpoints" / "last.ckpt"
    ckpt = load_checkpoint(path)
    _, tokenizer = model_from_checkpoint(ckpt, str(path))
    with initialize_config_dir(config_dir=str(CONF / "model"), version_base="1.3"):
        model_cfg = compose(config_name=preset)
    model = build_model(model_cfg, tokenizer.vocab_size)
    ckpt["hyper_parameters"]["model"] = dict(model_cfg)
    src = ExportSource(model, tokenizer, export_config(ckpt, model, tokenizer, path), path)
    with pytest.raises(MTError, match="cannot be exported to CTranslate2") as e:
        write_ctranslate2(src, tmp_path / "ct2")
    assert "\n" not in str(e.value) and "format=hf" in str(e.value)
    assert not (tmp_path / "ct2").exists()


def test_export_speed_rows_for_the_benchmark(run):
    pytest.importorskip("ctranslate2")
    from mtlab.bench.export_speed import export_speed, render_rows

    sources, refs = parity_sources()[:20], parity_references()[:20]
    rows = export_speed(str(run / "checkpoints" / "last.ckpt"), sources, refs, tgt_lang="de", beams=(1,),
                        threads=1, quantizations=(None,), warmup=2)
    assert [(r.engine, r.weights, r.beam) for r in rows] == [("torch", "float32", 1), ("ctranslate2", "float32", 1)]
    assert all(r.sentences == 20 and r.target_tokens > 0 and r.sent_s > 0 and r.tok_s > 0 for r in rows)
    assert rows[0].bleu == rows[1].bleu and rows[0].target_tokens == rows[1].target_tokens  # greedy parity
    assert "| ctranslate2 | float32 | 1 | 1 |" in render_rows(rows)
