"""mtlab.bench: its measuring pieces on known inputs, and a tiny end-to-end run of python -m mtlab.bench."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch.utils.flop_counter import FlopCounterMode

from mt.api import MTError, has_bf16_units
from mtlab.bench.flops import RNN_FORMULAS
from mtlab.bench.memory import MemoryPoint, SavedBytes, _over_budget, growth_exponent
from mtlab.bench.models import model_specs
from mtlab.bench.recipes import measure_recipes
from mtlab.bench.table import format_table
from mtlab.bench.throughput import _tok_s, synthetic_batches
from tests.utils import TINY_BENCH, TINY_DATA, run_module, tiny_model_overrides


def test_saved_bytes_counts_each_storage_once_and_skips_excluded() -> None:
    x = torch.randn(1000, requires_grad=True)  # 4000 bytes
    w = torch.randn(1000, requires_grad=True)
    with SavedBytes(exclude=[w]) as saved:
        y = x * x  # saves x twice: one storage
        z = y.sin()  # saves y
        _ = z * w  # saves z and w (excluded)
        _ = x[500:] * y[:500]  # views of x and y: their storages again
    assert saved.total == 3 * 4000
    assert SavedBytes().total == 0


def test_growth_exponent_uses_the_upper_half() -> None:
    lengths = [64, 128, 256, 512, 1024, 2048]
    linear_then_quadratic = [MemoryPoint(n, 1000 * n + (n * n if n >= 512 else 0)) for n in lengths]
    exponent, used = growth_exponent(linear_then_quadratic)
    assert used == [512, 1024, 2048] and 1.5 < exponent < 2.0
    assert growth_exponent([MemoryPoint(n, 7 * n * n) for n in lengths])[0] == pytest.approx(2.0)
    assert growth_exponent([MemoryPoint(64, 10)]) == (None, [])


def test_budget_skips_lengths_that_would_not_fit() -> None:
    cfg = OmegaConf.create({"max_gib": 1.0, "max_seconds": 100})
    points = [MemoryPoint(1024, 2**26, seconds=1.0), MemoryPoint(2048, 2**28, seconds=2.0)]  # quadratic bytes
    assert _over_budget(points, 4096, cfg) is None  # 1 GiB extrapolated: fits exactly
    assert "max_gib" in _over_budget(points, 8192, cfg)
    slow = [MemoryPoint(1024, 10, seconds=10.0), MemoryPoint(2048, 20, seconds=40.0)]
    assert "max_seconds" in _over_budget(slow, 4096, cfg)


def test_tokens_per_second_counts_only_timed_steps() -> None:
    times = [0.0, 5.0, 6.0, 7.0]  # clock before step 1, after steps 1, 2, 3
    assert _tok_s(times, [999, 100, 300], warmup=1) == pytest.approx(400 / 2.0)
    batch = synthetic_batches(1, 4, 6, 50, seed=0)[0]
    assert batch.src.shape == batch.tgt_in.shape == (4, 6) and batch.n_tgt_tokens == 24
    assert (batch.tgt_in[:, 1:] == batch.tgt_out[:, :-1]).all()


def test_flop_count_includes_the_fused_lstm_kernel() -> None:
    """torch's counter does not know oneDNN's / cuDNN's LSTM; ours adds 2 x tokens x gate weights (x2 backward)."""
    batch, steps, inp, hidden = 3, 5, 6, 8
    lstm = torch.nn.LSTM(inp, hidden, num_layers=2, batch_first=True)
    x = torch.randn(batch, steps, inp, requires_grad=True)
    with FlopCounterMode(display=False, custom_mapping=RNN_FORMULAS) as counter:
        out, _ = lstm(x)
        forward = counter.get_total_flops()
        out.sum().backward()
    gates = 4 * hidden * (inp + hidden) + 4 * hidden * (hidden + hidden)  # both layers' input + recurrent weights
    assert forward == 2 * batch * steps * gates
    assert counter.get_total_flops() == 3 * forward


def test_bench_specs_are_composed_like_train_py() -> None:
    """Presets come from Hydra's own composition, so train.py overrides reach every setting the bench uses."""
    cfg = OmegaConf.create({"models": ["transformer_base", "lstm"], "ckpts": {}, "model_overrides":
                            {"lstm": ["model.embed_dim=64"]}, "train_overrides": ["trainer.gradient_clip_val=0.5",
                                                                                  "train.label_smoothing=0.2"]})
    specs = model_specs(cfg)
    assert specs["transformer_base"].cfg.model.d_model == 512  # its defaults list: [transformer, _self_]
    assert specs["transformer_base"].cfg.optim.warmup_steps == 4000  # optim follows the model preset
    assert specs["lstm"].cfg.model.embed_dim == 64 and specs["transformer_base"].cfg.model.d_model == 512
    assert specs["lstm"].gradient_clip == 0.5 and specs["lstm"].label_smoothing == 0.2
    assert specs["lstm"].batching == {} == specs["transformer_base"].batching  # the bench data's batches
    recipe = model_specs(OmegaConf.merge(cfg, {"model_overrides": {"lstm": ["recipe=multi30k_lstm"]}}))["lstm"]
    assert recipe.batching == {"max_tokens": 2048}  # the recipe's own, for the real-batch throughput
    with pytest.raises(MTError, match="not in models"):
        model_specs(OmegaConf.merge(cfg, {"ckpts": {"gru": "x.ckpt"}}))


def test_format_table_aligns_columns() -> None:
    text = format_table(["model", "tok/s"], [["lstm", 1234.5], ["transformer", None]])
    lines = text.splitlines()
    assert lines[0].startswith("model") and len({len(line) for line in lines}) == 1
    assert lines[2].endswith("1,234.5") and lines[3].endswith("n/a")


def test_bench_smoke(tmp_path: Path) -> None:
    """The whole command on tiny models and a Multi30k slice: every section, the table and bench.json."""
    out = tmp_path / "bench"
    r = run_module("mtlab.bench", f"hydra.run.dir={out}", f"paths.cache_dir={tmp_path / 'cache'}", *TINY_DATA,
                   *TINY_BENCH, *tiny_model_overrides({"transformer": ["data.max_tokens=200"]}), "device=cpu")
    assert r.returncode == 0, r.stderr[-3000:]
    for heading in ("Training throughput", "Memory against sequence length", "Decoding", "Per-token latency",
                    "Targets", "randomly initialised model, exactly 4 output tokens"):
        assert heading in r.stdout, heading
    res = json.loads((out / "bench.json").read_text())
    assert (out / "bench.txt").read_text() in r.stdout
    rows = res["throughput"]["rows"]
    precisions = ("32", "bf16") if has_bf16_units(torch.device("cpu")) else ("32",)  # emulated bf16: skipped
    assert {(x["preset"], x["precision"], x["source"]) for x in rows} == {
        (p, q, s) for p in ("lstm", "transformer") for q in precisions for s in ("synthetic", "real")}
    assert (len(precisions) == 1) == ("bf16: skipped (this CPU has no bf16 units" in r.stdout)
    assert all(x["bare_tok_s"] > 0 and x["pipeline_tok_s"] > 0 and x["pipeline_vs_bare"] > 0 for x in rows)
    assert all(x["mflop_per_token"] > 0 and 0 < x["bare_of_peak"] for x in rows)
    # real batches: each preset's own batching (the Transformer's 200 tokens) on the bench data (800)
    assert res["models"]["transformer"]["batching"] == {"max_tokens": 200} and res["models"]["lstm"]["batching"] == {}
    real = {x["preset"]: x["tokens_per_step"] for x in rows if x["source"] == "real"}
    assert real["transformer"] <= 200 < real["lstm"] <= 800, real
    own = res["throughput"]["real_batches"]  # the statistics of those batches, per preset
    assert own["transformer"]["max_tokens"] == 200 and own["lstm"]["max_tokens"] == 800
    assert own["transformer"]["train_batches"] > own["lstm"]["train_batches"] == res["data"]["train_batches"]
    assert set(res["throughput"]["matmul_peak_gflop_s"]) == set(precisions) and "matmul peak" in r.stdout
    curves = {c["name"]: c for c in res["memory"]["curves"]}
    assert set(curves) == {"lstm", "transformer sdpa", "transformer math"}
    assert all(c["exponent"] is not None and len(c["points"]) == 4 for c in curves.values())
    assert curves["transformer sdpa"]["backend"] != "explicit matrix"
    last = {n: c["points"][-1]["bytes"] for n, c in curves.items()}
    assert last["transformer math"] > last["transformer sdpa"]  # the attention matrices are saved
    dec = res["decoding"]
    assert dec["trained"] == {"lstm": False, "transformer": False}
    assert all(s["output_tokens"] == 30 * 4 for s in dec["speed"])  # fixed length without a checkpoint
    assert {c["name"] for c in dec["latency"]} == {"lstm", "transformer cached", "transformer uncached"}
    assert all(len(c["ms"]) == 12 for c in dec["latency"])
    assert dec["cache_speedup"]["transformer"]["at"] == 8
    streaming = {(r["model"], r["length"]) for r in res["streaming"]["rows"]}
    assert streaming == {(p, n) for p in ("lstm_streaming", "transformer_streaming") for n in (8, 24)}
    assert "Streaming: cost per incoming source token" in r.stdout
    names = [t["name"] for t in res["targets"]]
    assert sum("pipeline / bare" in n for n in names) == 4 * len(precisions)
    assert [n for n in names if "padding" in n] == [f"padding fraction of the training batches ({p})"
                                                    for p in ("lstm", "transformer")]  # each preset's own batches
    for t in res["targets"]:  # each verdict follows from its own numbers
        assert t["pass"] == (t["value"] >= t["target"] if t["op"] == ">=" else t["value"] < t["target"]), t


def test_bench_rejects_unknown_sections(tmp_path: Path) -> None:
    r = run_module("mtlab.bench", f"hydra.run.dir={tmp_path}", "sections=[throughput,speed]")
    assert r.returncode == 2 and "unknown speed" in r.stderr


def test_bench_export_and_data_sections(tmp_path: Path) -> None:
    """sections=[export,data]: CTranslate2 vs our search on a trained checkpoint; preparation against corpus size."""
    pytest.importorskip("ctranslate2")
    from mt.pipeline import train
    from tests.utils import compose_train, tiny_overrides

    trained = train(compose_train(tiny_overrides("transformer", tmp_path / "run", tmp_path / "cache") +
                                  ["test_after_fit=false"]))
    out = tmp_path / "bench"
    r = run_module("mtlab.bench", f"hydra.run.dir={out}", f"paths.cache_dir={tmp_path / 'cache'}", *TINY_DATA,
                   "threads=1", "sections=[export,data]", "models=[transformer]",
                   f"+ckpts.transformer={trained.last_checkpoint}", "export.max_sentences=20", "export.beams=[1]",
                   "export.threads=1", "data_scale.pairs=[2000]",
                   'data_scale.overrides=["data.tokenizer.vocab_size=300","data.tokenizer.hard_vocab_limit=false"]',
                   "device=cpu")
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((out / "bench.json").read_text())
    engines = {(x["engine"], x["weights"]) for x in res["export"]["rows"]}
    assert engines == {("torch", "float32"), ("ctranslate2", "float32"), ("ctranslate2", "int8")}
    assert all(x["sentences"] == 20 and x["sent_s"] > 0 for x in res["export"]["rows"])
    (point,) = res["data_scale"]["rows"]
    assert point["pairs"] == 2000 and point["first_peak_rss_mb"] > 0 and point["cached_s"] > 0
    assert "CTranslate2" in r.stdout and "Data preparation against corpus size" in r.stdout
    assert not (out / "data_scale").exists()  # the synthetic corpora are removed


def test_a_recipe_set_may_not_set_the_precision_its_row_is_labelled_with(tmp_path: Path) -> None:
    cfg = OmegaConf.create({"sets": {"half": ["trainer.precision=bf16-mixed"]}, "repeats": 1})
    with pytest.raises(MTError, match="recipes: set half sets trainer.precision, which each row is labelled with"):
        measure_recipes({"transformer": []}, ["32"], cfg, tmp_path / "work")


def test_bench_recipes_section(tmp_path: Path) -> None:
    """sections=[recipes]: whole train.py runs with the defaults and with a named override set, rotating."""
    out = tmp_path / "bench"
    r = run_module("mtlab.bench", f"hydra.run.dir={out}", f"paths.cache_dir={tmp_path / 'cache'}", *TINY_DATA,
                   *[o for o in tiny_model_overrides() if ".transformer=" in o], "sections=[recipes]", "models=[transformer]", "precisions=[32]",
                   "recipes.steps=2", "recipes.repeats=1", "~recipes.sets",
                   '+recipes.sets={bernoulli: ["runtime.byte_dropout=false"]}',
                   "threads=1", "device=cpu", timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((out / "bench.json").read_text())["recipes"]
    rows = {row["name"]: row for row in res["rows"]}
    assert list(rows) == ["defaults", "bernoulli"]
    assert all(len(row["runs"]) == 1 and min(row["runs"]) > 0 for row in rows.values())
    assert rows["defaults"]["defaults_vs_set"] == 1.0
    assert rows["bernoulli"]["overrides"] == ["runtime.byte_dropout=false"]
    assert rows["bernoulli"]["defaults_vs_set"] == pytest.approx(
        rows["defaults"]["tok_s"] / rows["bernoulli"]["tok_s"], rel=1e-2)
    assert any("data.limit=200" in o for o in res["overrides"]["transformer"])  # the command's data settings go on
    assert "Recipes: whole train.py runs" in r.stdout
    assert not (out / "recipes").exists()  # the runs' folders are removed
