"""mtlab.compare: run planning and resume, CSV reading, verdicts from numbers, and a tiny end-to-end comparison."""

from __future__ import annotations

import json
import os
from pathlib import Path

from omegaconf import OmegaConf

from mt.api import short_precision
from mtlab.compare.claims import HOLDS, claim_time_to_bleu, claim_tokens_per_second
from mtlab.compare.runs import plan_runs, read_csv_logs, run_env
from mtlab.compare.summary import time_to_bleu
from mtlab.overrides import forwarded_overrides
from tests.utils import TINY, TINY_BENCH, TINY_DATA, run_module


def test_forwarded_overrides_are_the_data_paths_decode_ones() -> None:
    task = ["data.src=de", "+data.limit=5", "paths.cache_dir=/c", "paths.output_dir=/x", "decode.beam_size=2",
            "models=[lstm]", "train_overrides=[a]", "output_dir=/o", "data=text", "~decode.n_best"]
    assert forwarded_overrides(task) == ["data.src=de", "+data.limit=5", "paths.cache_dir=/c", "decode.beam_size=2",
                                         "data=text", "~decode.n_best"]


def test_plan_runs_resumes_and_skips(tmp_path: Path) -> None:
    cfg = OmegaConf.create({"models": ["lstm", "transformer", "transformer_base"], "train_overrides": ["x=1"],
                            "model_overrides": {"lstm": ["model.dropout=0.3"]}})
    (tmp_path / "runs" / "lstm").mkdir(parents=True)
    (tmp_path / "runs" / "lstm" / "results.json").write_text("{}")
    (tmp_path / "runs" / "transformer" / "checkpoints").mkdir(parents=True)
    (tmp_path / "runs" / "transformer" / "checkpoints" / "last.ckpt").write_bytes(b"")
    lstm, transformer, base = plan_runs(cfg, tmp_path, ["data.src=de"])
    assert (lstm.status, transformer.status, base.status) == ("finished", "resume", "fresh")
    assert lstm.command[3:] == ["model=lstm", "data.src=de", "x=1", "model.dropout=0.3",
                                f"hydra.run.dir={tmp_path / 'runs' / 'lstm'}"]
    assert transformer.command[-1] == f"ckpt_path={tmp_path / 'runs' / 'transformer' / 'checkpoints' / 'last.ckpt'}"
    assert not any(c.startswith("ckpt_path=") for c in base.command)
    assert transformer.log_path == tmp_path / "runs" / "transformer.log"
    cores = os.cpu_count() or 1
    assert run_env(True, 2)["OMP_NUM_THREADS"] == str(max(1, cores // 2))  # the cores shared out
    assert run_env(False, 2).get("OMP_NUM_THREADS") == os.environ.get("OMP_NUM_THREADS")  # sequential: untouched


def test_csv_logs_of_every_restart_are_read_in_order(tmp_path: Path) -> None:
    head = "epoch,step,train/loss,train/tok_s,val/bleu,val/chrf,val/elapsed_s\n"
    for version, body in ((0, "0,9,3.0,100,,,\n0,10,,,5.0,20.0,60.0\n"), (1, "1,20,,,12.5,30.0,130.0\n1,19,2.0,300,,,\n")):
        path = tmp_path / "csv" / f"version_{version}" / "metrics.csv"
        path.parent.mkdir(parents=True)
        path.write_text(head + body)
    val, tok_s = read_csv_logs(tmp_path)
    assert [v["bleu"] for v in val] == [5.0, 12.5] and [v["elapsed_s"] for v in val] == [60.0, 130.0]
    assert tok_s == [100.0, 300.0]
    assert time_to_bleu(val, [5, 10, 20]) == {"5": 60.0, "10": 130.0, "20": None}
    assert short_precision("bf16-mixed") == "bf16" and short_precision(32) == "32"


def test_verdicts_follow_the_numbers() -> None:
    fast = {"time_to_bleu": {"10": 100.0, "20": 400.0}, "bench_tok_s_pipeline": 900.0, "bench_tok_s_bare": 1000.0,
            "train_tok_s_median": 800.0, "bench_precision": "bf16"}
    slow = {"time_to_bleu": {"10": 200.0, "20": None}, "bench_tok_s_pipeline": 1200.0, "bench_tok_s_bare": 1300.0,
            "train_tok_s_median": 700.0, "bench_precision": "bf16"}
    assert claim_time_to_bleu(fast, slow)["verdict"] == HOLDS
    assert claim_time_to_bleu(slow, fast)["verdict"] == "does not hold"
    tps = claim_tokens_per_second(fast, slow)
    assert tps["verdict"] == "does not hold" and "900 vs 1,200" in tps["evidence"] and "disagree" in tps["evidence"]


def _compare(out: Path, cache: Path) -> tuple[int, str]:
    train = ["trainer.accelerator=cpu", "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
             "trainer.log_every_n_steps=1", "logger=csv", "optim.warmup_steps=10"]
    quoted = ",".join(f'"{o}"' for o in train)
    models = [f'+model_overrides.{arch}=[{",".join(chr(34) + o + chr(34) for o in opts if o.startswith("model."))}]'
              for arch, opts in TINY.items()]
    bench = ",".join(f'"{o}"' for o in TINY_BENCH)
    r = run_module("mtlab.compare", f"output_dir={out}", f"paths.cache_dir={cache}", *TINY_DATA, "decode.beam_size=2",
                   "decode.max_len_a=1.0", "decode.max_len_b=5", f"train_overrides=[{quoted}]", *models,
                   f"bench_overrides=[{bench}]", "bleu_levels=[0.5,1,5]", "device=cpu", "simultaneous.ks=[2]",
                   "simultaneous.max_sentences=12", "significance.n_samples=100", timeout=600)
    return r.returncode, r.stdout + r.stderr


def test_compare_smoke_and_resume(tmp_path: Path) -> None:
    """Train both tiny models, evaluate, benchmark, report; a second run retrains and re-measures nothing."""
    out = tmp_path / "cmp"
    rc, log = _compare(out, tmp_path / "cache")
    assert rc == 0, log[-3000:]
    res = json.loads((out / "results.json").read_text())
    assert set(res["runs"]) == {"lstm", "transformer"} and res["roles"] == {"transformer": "transformer",
                                                                            "recurrent": "lstm"}
    for run in res["runs"].values():
        assert run["params"] > 0 and run["epochs"] == 1 and run["fit_seconds"] > 0
        assert "nrefs:1" in run["test"]["test_2016_flickr"]["bleu_signature"]
        assert run["val_curve"] and run["bench_tok_s_pipeline"] > 0 and set(run["time_to_bleu"]) == {"0.5", "1", "5"}
    assert res["bench"]["decoding"]["trained"] == {"lstm": True, "transformer": True}
    assert [c["id"] for c in res["claims"]] == [1, 2, 3, 4, 5, 10, 11, 12]
    measured = {c["id"]: c for c in res["claims"] if c["id"] <= 10}  # 11, 12 need wait-k trained streaming runs
    assert all(c["verdict"] in ("holds", "does not hold") and c["evidence"] for c in measured.values())
    assert {c["id"]: c["verdict"] for c in res["claims"] if c["id"] > 10} == {11: "not measured", 12: "not measured"}
    (pair,) = res["significance"]["pairs"].values()  # lstm vs transformer, paired bootstrap on the test set
    assert pair["n_sentences"] == 200 and 0 < pair["metrics"]["BLEU"]["p_value"] <= 1
    assert "paired bootstrap p = " in res["claims"][0]["evidence"]
    curves = {c["preset"]: c for c in res["simultaneous"]["curves"]}  # test-time wait-k of the full-sentence runs
    assert set(curves) == {"lstm", "transformer"} and not any(c["streaming"] for c in curves.values())
    assert all([p["k"] for p in c["points"]] == [2, "full"] and all(p["n"] == 12 for p in c["points"])
               for c in curves.values())
    assert all(c["points"][0]["al"] < c["points"][1]["al"] for c in curves.values())  # wait-2 lags less than full
    assert set(res["plots"]) == {"bleu_vs_time", "memory_vs_length", "latency_vs_position", "throughput",
                                 "bleu_vs_lagging", "attention_lstm", "attention_transformer"}
    assert all((out / f).stat().st_size > 0 for f in res["plots"].values())
    report = (out / "REPORT.md").read_text()
    for text in ("## Verdicts", "AMD" if "AMD" in res["system"]["cpu"] else res["system"]["cpu"], "torch",
                 "test BLEU", "Wall-clock time to reach", "growth exponent", "Per-token latency",
                 "Simultaneous (streaming) translation", "state KiB first / last", "## Significance"):
        assert text in report, text

    stamps = {p: (out / "runs" / p / "results.json").stat().st_mtime_ns for p in res["runs"]}
    bench_stamp = (out / "bench" / "bench.json").stat().st_mtime_ns
    logs = {p: (out / "runs" / f"{p}.log").read_text() for p in res["runs"]}
    rc, log = _compare(out, tmp_path / "cache")
    assert rc == 0, log[-3000:]
    assert "finished earlier" in log and "reusing" in log
    assert {p: (out / "runs" / p / "results.json").stat().st_mtime_ns for p in res["runs"]} == stamps
    assert {p: (out / "runs" / f"{p}.log").read_text() for p in res["runs"]} == logs  # no new training
    assert (out / "bench" / "bench.json").stat().st_mtime_ns == bench_stamp
