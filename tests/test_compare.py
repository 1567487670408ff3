"""mtlab.compare: run planning and resume, CSV reading, verdicts from numbers, and a tiny end-to-end comparison."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from mt.api import MTError, short_precision
from mtlab.compare.claims import HOLDS, claim_bleu, claim_time_to_bleu, claim_tokens_per_second, regime
from mtlab.compare.run import check_splits
from mtlab.compare.runs import (
    Parallel,
    RunPlan,
    execute,
    parallel_mode,
    plan_runs,
    progress_note,
    read_csv_logs,
    run_env,
    run_groups,
    status_line,
)
from mtlab.compare.summary import time_to_bleu
from mtlab.overrides import forwarded_overrides
from tests.utils import TINY, TINY_BENCH, TINY_DATA, compose, run_module


def test_forwarded_overrides_are_the_data_paths_decode_ones() -> None:
    task = ["data.src=de", "+data.limit=5", "paths.cache_dir=/c", "paths.output_dir=/x", "decode.beam_size=2",
            "models=[lstm]", "train_overrides=[a]", "output_dir=/o", "data=text", "~decode.n_best"]
    assert forwarded_overrides(task) == ["data.src=de", "+data.limit=5", "paths.cache_dir=/c", "decode.beam_size=2",
                                         "data=text", "~decode.n_best"]


def test_the_significance_split_follows_the_data_and_a_wrong_one_fails_before_training() -> None:
    """The paired test ran on test_2016_flickr whatever the data: with data=hf it failed after every run had
    trained. Its default is now the data's first test set, and a name the data lacks fails at once."""
    hf = compose("compare", ["data=hf", "data.path=wmt14"])
    assert (hf.significance.split, hf.simultaneous.split) == ("test", "test")
    check_splits(hf)
    assert compose("compare", []).significance.split == "test_2016_flickr"
    with pytest.raises(MTError, match=r"significance.split='test_2016_flickr' is not a split of this data config; "
                                      r"use one of validation, test"):
        check_splits(compose("compare", ["data=hf", "significance.split=test_2016_flickr"]))


def test_plan_runs_resumes_and_skips(tmp_path: Path) -> None:
    cfg = OmegaConf.create({"models": ["lstm", "transformer", "transformer_base"], "train_overrides": ["x=1"],
                            "model_overrides": {"lstm": ["model.dropout=0.3"]}})
    (tmp_path / "runs" / "lstm").mkdir(parents=True)
    (tmp_path / "runs" / "lstm" / "results.json").write_text("{}")
    (tmp_path / "runs" / "transformer" / "checkpoints").mkdir(parents=True)
    (tmp_path / "runs" / "transformer" / "checkpoints" / "last.ckpt").write_bytes(b"")
    lstm, transformer, base = plan_runs(cfg, tmp_path, ["data.src=de"])
    assert (lstm.status, transformer.status, base.status) == ("finished", "resume", "fresh")
    assert lstm.command[3:] == ["model=lstm", "trainer.enable_progress_bar=false", "data.src=de", "x=1", "model.dropout=0.3",
                                f"hydra.run.dir={tmp_path / 'runs' / 'lstm'}"]
    assert transformer.command[-1] == f"ckpt_path={tmp_path / 'runs' / 'transformer' / 'checkpoints' / 'last.ckpt'}"
    assert not any(c.startswith("ckpt_path=") for c in base.command)
    assert transformer.log_path == tmp_path / "runs" / "transformer.log"
    cores = os.cpu_count() or 1
    assert run_env(True, 2)["OMP_NUM_THREADS"] == str(max(1, cores // 2))  # the cores shared out
    assert run_env(False, 2).get("OMP_NUM_THREADS") == os.environ.get("OMP_NUM_THREADS")  # sequential: untouched


def test_status_says_where_each_run_stands(tmp_path: Path) -> None:
    cfg = OmegaConf.create({"models": ["lstm", "transformer"], "train_overrides": [], "model_overrides": {},
                            "seeds": [1, 2]})
    runs = tmp_path / "runs"
    (runs / "lstm").mkdir(parents=True)
    (runs / "lstm" / "results.json").write_text(json.dumps(
        {"stopped_by": "early_stopping", "epochs": 31, "test": {"test_2016_flickr": {"bleu": 37.126}}}))
    (runs / "transformer" / "checkpoints").mkdir(parents=True)
    torch.save({"global_step": 800, "epoch": 3, "state_dict": {"w": torch.zeros(2)}},
               runs / "transformer" / "checkpoints" / "last.ckpt")  # saved mid-epoch, after the last validation
    (runs / "transformer" / "csv" / "version_0").mkdir(parents=True)
    (runs / "transformer" / "csv" / "version_0" / "metrics.csv").write_text(
        "epoch,step,val/bleu\n0,243,9.4\n1,487,19.64\n2,731,19.5\n")
    assert [status_line(p) for p in plan_runs(cfg, tmp_path, [])] == [
        "lstm: finished, stopped by early_stopping after 31 epochs; test BLEU test_2016_flickr 37.13",
        "lstm.seed2: not started",
        "transformer: unfinished (last.ckpt at step 800; 3 validations, the last at step 731, best val BLEU 19.64 at "
        "step 487 (1 validation ago)); a re-run resumes from its last.ckpt",
        "transformer.seed2: not started"]
    (runs / "transformer" / "checkpoints" / "last.ckpt").write_bytes(b"cut short")
    assert "last.ckpt is unreadable" in status_line(plan_runs(cfg, tmp_path, [])[2])


def test_plan_runs_one_per_seed(tmp_path: Path) -> None:
    cfg = OmegaConf.create({"models": ["lstm", "transformer"], "train_overrides": [], "model_overrides": {},
                            "seeds": [7, 8]})
    plans = plan_runs(cfg, tmp_path, [])
    assert [(p.name, p.preset, p.seed, p.primary) for p in plans] == [
        ("lstm", "lstm", 7, True), ("lstm.seed8", "lstm", 8, False),
        ("transformer", "transformer", 7, True), ("transformer.seed8", "transformer", 8, False)]
    assert all(f"seed={p.seed}" in p.command for p in plans)
    assert plans[1].run_dir == tmp_path / "runs" / "lstm.seed8"
    assert not any(c.startswith("seed=") for c in plan_runs(OmegaConf.merge(cfg, {"seeds": None}), tmp_path, [])[0].command)
    with pytest.raises(MTError, match="repeats a seed"):
        plan_runs(OmegaConf.merge(cfg, {"seeds": [3, 3]}), tmp_path, [])
    (tmp_path / "runs" / "lstm").mkdir(parents=True)
    (tmp_path / "runs" / "lstm" / "results.json").write_text("{}")  # seed 7's LSTM finished earlier
    (tmp_path / "runs" / "lstm" / ".hydra").mkdir()
    (tmp_path / "runs" / "lstm" / ".hydra" / "config.yaml").write_text("seed: 1234\n")
    with pytest.raises(MTError, match=r"lstm was trained with seed=1234, not seed=7; list seed 1234 first"):
        plan_runs(cfg, tmp_path, [])  # a run of train.yaml's seed would have joined the mean as seed 7
    (tmp_path / "runs" / "lstm" / ".hydra" / "config.yaml").write_text("seed: 7\n")
    plans = plan_runs(cfg, tmp_path, [])
    pairs = [[p.name for p in group] for group in run_groups(plans, parallel_mode(True))]
    assert pairs == [["transformer"], ["lstm.seed8", "transformer.seed8"]]  # a seed's presets together
    assert [[p.name for p in g] for g in run_groups(plans, parallel_mode(False))] == [
        ["lstm.seed8"], ["transformer"], ["transformer.seed8"]]
    assert [[p.name for p in g] for g in run_groups(plans, parallel_mode("all"))] == [
        ["lstm.seed8", "transformer", "transformer.seed8"]]  # every unfinished run at once
    for p in plans:
        (p.run_dir).mkdir(parents=True, exist_ok=True)
        (p.run_dir / "results.json").write_text("{}")
    assert [[p.name for p in g] for g in run_groups(plans, parallel_mode(2))] == [
        ["transformer", "lstm.seed8", "transformer.seed8"]]  # one queue, seed by seed
    assert parallel_mode(2) == Parallel("slots", 2) and parallel_mode(2).at_once(2, 6) == 2
    assert parallel_mode(1) == parallel_mode(False) == Parallel("off")
    assert parallel_mode(True).at_once(2, 6) == 2 and parallel_mode("all").at_once(2, 6) == 6
    for p in plans:
        (p.run_dir).mkdir(parents=True, exist_ok=True)
        (p.run_dir / "results.json").write_text("{}")
    assert run_groups(plan_runs(cfg, tmp_path, []), Parallel("all")) == []  # all finished: nothing to start
    for bad in ("some", 0, -1):
        with pytest.raises(MTError, match=f"parallel={bad!r} is not a mode"):
            parallel_mode(bad)


def test_slots_start_the_next_run_as_soon_as_one_ends(tmp_path: Path) -> None:
    """parallel=2: run c starts when a ends, while b still trains; b finishes only once it sees c started (a
    barrier per pair would keep c waiting for b, and b would give up)."""
    def plan(name: str, code: str, seed: int) -> RunPlan:
        run_dir = tmp_path / "runs" / name
        done = f"open({str(run_dir / 'results.json')!r}, 'w').write('{{}}')"
        return RunPlan(name, run_dir, "fresh", [sys.executable, "-c", f"import os, sys, time, pathlib\n{code}\n{done}"],
                       seed)

    started = tmp_path / "c-started"
    wait_for_c = (f"t = time.time()\nwhile not os.path.exists({str(started)!r}):\n"
                  "    time.sleep(0.05)\n    if time.time() - t > 60: sys.exit(3)")
    plans = [plan("a", "pass", 1), plan("b", wait_for_c, 1), plan("c", f"pathlib.Path({str(started)!r}).touch()", 2)]
    for p in plans:
        p.run_dir.mkdir(parents=True)
    execute(plans, parallel_mode(2), poll_s=0.05)
    assert all((p.run_dir / "results.json").is_file() for p in plans)
    assert "mtlab.compare: fresh run:" in plans[2].log_path.read_text()
    failing = RunPlan("d", tmp_path / "runs" / "d", "fresh", [sys.executable, "-c", "raise SystemExit(2)"], 3)
    with pytest.raises(MTError, match=r"training failed: d \(exit 2; see .*d\.log\)"):
        execute([failing], parallel_mode(2), poll_s=0.05)


def test_seed_means_and_per_seed_significance_decide_the_bleu_claim() -> None:
    def run(preset: str, bleus: list[float]) -> dict:
        seeds = {"seeds": [1, 2, 3], "test": {"t": {"bleu": bleus, "bleu_mean": sum(bleus) / 3, "bleu_std": 1.0,
                                                    "chrf": bleus, "chrf_mean": 0.0, "chrf_std": 0.0}}}
        return {"preset": preset, "params": 10_000_000, "test": {"t": {"bleu": bleus[0]}}, "seeds": seeds}

    def sig(ps: list[float], t_bleu: list[float], r_bleu: list[float], key: str = "transformer|lstm") -> dict:
        first_t = key.startswith("transformer")
        tests = [{"metrics": {"BLEU": {"p_value": p, "a": {"score": x if first_t else y},
                                       "b": {"score": y if first_t else x}}}}
                 for p, x, y in zip(ps, t_bleu, r_bleu, strict=True)]
        return {"pairs": {key: tests[0]}, "per_seed": {key: tests}}

    t, r = run("transformer", [30.0, 31.0, 29.0]), run("lstm", [29.0, 27.0, 27.0])
    verdict = claim_bleu(t, r, 0.05, sig([0.01, 0.001, 0.02], [30.0, 31.0, 29.0], [29.0, 27.0, 27.0]), 0.05)
    assert "budget unknown (stop reasons not recorded" in verdict["evidence"]  # results.json from before the field
    assert verdict["verdict"] == HOLDS and "30.00 vs 27.67 BLEU (means over seeds)" in verdict["evidence"]
    assert "over 3 seeds (significant at 0.05 in 3 of 3 for transformer, in 0 for lstm)" in verdict["evidence"]
    # the tests' order in the key does not matter: the scores are read for each preset
    flipped = sig([0.01, 0.001, 0.02], [30.0, 31.0, 29.0], [29.0, 27.0, 27.0], key="lstm|transformer")
    assert claim_bleu(t, r, 0.05, flipped, 0.05)["verdict"] == HOLDS
    assert claim_bleu(t, r, 0.05, sig([0.01, 0.2, 0.02], [30.0, 31.0, 29.0], [29.0, 27.0, 27.0]), 0.05)[
        "verdict"] == "does not hold"
    # means favour the Transformer, but one seed's pair is significant the other way: every pair must agree
    t, r = run("transformer", [40.0, 36.0, 40.0]), run("lstm", [37.0, 38.0, 37.0])
    against = claim_bleu(t, r, 0.05, sig([0.001, 0.01, 0.001], [40.0, 36.0, 40.0], [37.0, 38.0, 37.0]), 0.05)
    assert against["verdict"] == "does not hold" and "in 2 of 3 for transformer, in 1 for lstm" in against["evidence"]


def test_the_quality_verdicts_say_whether_the_runs_converged() -> None:
    """A BLEU verdict at convergence and one within a budget mean different things: the evidence says which."""
    def run(preset: str, *why: str) -> dict:
        return {"preset": preset, "stopped_by": why[0], "seeds": {"stopped_by": list(why)} if len(why) > 1 else None}

    converged = regime(run("transformer", *["early_stopping"] * 3), run("lstm", *["early_stopping"] * 3))
    assert converged == ("at convergence (every run stopped by early stopping: transformer: early_stopping x3; "
                         "lstm: early_stopping x3)")
    budget = regime(run("transformer", "early_stopping", "max_time", "max_time"), run("lstm", "max_epochs"))
    assert budget == ("within a fixed budget, not converged (stopped by transformer: early_stopping, max_time x2; "
                      "lstm: max_epochs)")
    # claims.converged_min_epochs: a run that trained that many epochs counts as converged, a shorter one does not
    capped = {**run("lstm", "max_epochs"), "epochs": 60}
    assert regime(run("transformer", "early_stopping"), capped, min_epochs=60) == (
        "at convergence (every run stopped by early stopping or at max_epochs after at least 60 epochs: "
        "transformer: early_stopping; lstm: max_epochs)")
    assert regime(run("transformer", "early_stopping"), {**capped, "epochs": 59}, min_epochs=60).startswith(
        "within a fixed budget")
    assert regime(run("transformer", "early_stopping"), capped).startswith("within a fixed budget")
    seeds = {"preset": "lstm", "stopped_by": "max_epochs", "epochs": 60,
             "seeds": {"stopped_by": ["max_epochs", "max_time"], "epochs": [60, 60]}}
    assert regime(run("transformer", "early_stopping"), seeds, min_epochs=60).startswith("within a fixed budget")


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
    assert progress_note(tmp_path) == ("no last.ckpt; 2 validations, the last at step 20, best val BLEU 12.50 at step 20 "
                                       "(0 validations ago)")
    assert progress_note(tmp_path / "none") == "no last.ckpt, before its first validation"


def test_verdicts_follow_the_numbers() -> None:
    fast = {"time_to_bleu": {"10": 100.0, "20": 400.0}, "bench_tok_s_pipeline": 900.0, "bench_tok_s_bare": 1000.0,
            "train_tok_s_median": 800.0, "bench_precision": "bf16"}
    slow = {"time_to_bleu": {"10": 200.0, "20": None}, "bench_tok_s_pipeline": 1200.0, "bench_tok_s_bare": 1300.0,
            "train_tok_s_median": 700.0, "bench_precision": "bf16"}
    assert claim_time_to_bleu(fast, slow)["verdict"] == HOLDS
    assert claim_time_to_bleu(slow, fast)["verdict"] == "does not hold"
    tps = claim_tokens_per_second(fast, slow)
    assert tps["verdict"] == "does not hold" and "900 vs 1,200" in tps["evidence"] and "disagree" in tps["evidence"]
    assert claim_tokens_per_second(slow, fast)["verdict"] == HOLDS  # 1,200 vs 900: 1.33x
    near = {**fast, "bench_tok_s_pipeline": 1250.0}  # 1,250 vs 1,200: 1.04x, within a 10% margin
    assert claim_tokens_per_second(near, slow)["verdict"] == HOLDS
    within = claim_tokens_per_second(near, slow, margin=0.1)
    assert within["verdict"] == "does not hold" and "1.04x (> 1.10x wanted)" in within["evidence"]
    assert claim_tokens_per_second(near, slow, margin=0.02)["verdict"] == HOLDS


def _compare(out: Path, cache: Path, *extra: str) -> tuple[int, str]:
    train = ["trainer.accelerator=cpu", "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
             "trainer.log_every_n_steps=1", "logger=csv", "optim.warmup_steps=10"]
    quoted = ",".join(f'"{o}"' for o in train)
    models = [f'+model_overrides.{arch}=[{",".join(chr(34) + o + chr(34) for o in opts if o.startswith("model."))}]'
              for arch, opts in TINY.items()]
    bench = ",".join(f'"{o}"' for o in TINY_BENCH)
    r = run_module("mtlab.compare", f"output_dir={out}", f"paths.cache_dir={cache}", *TINY_DATA, "decode.beam_size=2",
                   "decode.max_len_a=1.0", "decode.max_len_b=5", f"train_overrides=[{quoted}]", *models,
                   f"bench_overrides=[{bench}]", "bleu_levels=[0.5,1,5]", "device=cpu", "simultaneous.ks=[2]",
                   "simultaneous.max_sentences=12", "significance.n_samples=100", *extra, timeout=600)
    return r.returncode, r.stdout + r.stderr


def test_compare_smoke_and_resume(tmp_path: Path) -> None:
    """Train both tiny models, evaluate, benchmark, report; a second run retrains and re-measures nothing."""
    out = tmp_path / "cmp"
    peer = f"+peers.joeynmt={{work_dir: {_joeynmt_work(tmp_path, ['Ein Hund rennt.'] * 200)}}}"
    rc, log = _compare(out, tmp_path / "cache", "seeds=[1234,7]", "parallel=all", peer)  # four runs at once
    assert rc == 0, log[-3000:]
    res = json.loads((out / "results.json").read_text())
    assert set(res["runs"]) == {"lstm", "transformer"} and res["roles"] == {"transformer": "transformer",
                                                                            "recurrent": "lstm"}
    for run in res["runs"].values():
        assert run["params"] > 0 and run["epochs"] == 1 and run["fit_seconds"] > 0
        assert run["stopped_by"] == "max_epochs" and run["seeds"]["stopped_by"] == ["max_epochs"] * 2
        assert "nrefs:1" in run["test"]["test_2016_flickr"]["bleu_signature"]
        assert run["val_curve"] and run["bench_tok_s_pipeline"] > 0 and set(run["time_to_bleu"]) == {"0.5", "1", "5"}
    assert res["bench"]["decoding"]["trained"] == {"lstm": True, "transformer": True}
    assert all(m["batching"]["max_tokens"] == 800 for m in res["bench"]["models"].values())  # as the runs trained
    assert [c["id"] for c in res["claims"]] == [1, 2, 3, 4, 5, 10, 11, 12]
    measured = {c["id"]: c for c in res["claims"] if c["id"] <= 10}  # 11, 12 need wait-k trained streaming runs
    assert all(c["verdict"] in ("holds", "does not hold") and c["evidence"] for c in measured.values())
    assert {c["id"]: c["verdict"] for c in res["claims"] if c["id"] > 10} == {11: "not measured", 12: "not measured"}
    (pair,) = res["significance"]["pairs"].values()  # lstm vs transformer, paired bootstrap on the test set
    assert pair["n_sentences"] == 200 and 0 < pair["metrics"]["BLEU"]["p_value"] <= 1
    assert "paired bootstrap p = " in res["claims"][0]["evidence"]
    assert "within a fixed budget, not converged (stopped by transformer: max_epochs x2; lstm: max_epochs x2)" in (
        res["claims"][0]["evidence"])
    for preset, run in res["runs"].items():  # the second seed: its own run, in the means and the per-seed tests
        seed7 = json.loads((out / "runs" / f"{preset}.seed7" / "results.json").read_text())["test"]["test_2016_flickr"]
        scores = run["seeds"]["test"]["test_2016_flickr"]
        assert run["seeds"]["seeds"] == [1234, 7] and scores["bleu"][1] == seed7["bleu"]
        assert scores["bleu"][0] == run["test"]["test_2016_flickr"]["bleu"]
        assert len(run["seeds"]["val_curves"]) == 2 and run["seeds"]["val_curves"][0] == run["val_curve"]
        assert run["seeds"]["val_curves"][1] and run["seeds"]["val_curves"][1] != run["val_curve"]  # plotted too
    assert set(res["significance"]["peers"]) == {"lstm|joeynmt", "transformer|joeynmt"}  # each preset vs the peer
    assert all(set(t["metrics"]) == {"BLEU", "chrF2"} and all(0 < m["p_value"] <= 1 for m in t["metrics"].values())
               for t in res["significance"]["peers"].values())
    (per_seed,) = res["significance"]["per_seed"].values()
    assert len(per_seed) == 2 and per_seed[0] == pair
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
                 "Simultaneous (streaming) translation", "state KiB first / last", "## Significance", "Over seeds",
                 "Each seed's pair of runs", "every run at once", "stopped by", "| transformer | joeynmt | BLEU |"):
        assert text in report, text
    (data_line,) = [line for line in report.splitlines() if line.startswith("- Data: ")]
    assert "lstm, transformer: " in data_line and "training batches of <= 800 tokens" in data_line  # as they trained

    stamps = {p: (out / "runs" / p / "results.json").stat().st_mtime_ns for p in res["runs"]}
    bench_stamp = (out / "bench" / "bench.json").stat().st_mtime_ns
    logs = {p: (out / "runs" / f"{p}.log").read_text() for p in res["runs"]}
    rc, log = _compare(out, tmp_path / "cache", "seeds=[1234,7]", "parallel=all", peer)
    assert rc == 0, log[-3000:]
    assert "finished earlier" in log and "lstm.seed7: finished earlier" in log and "reusing" in log
    assert {p: (out / "runs" / p / "results.json").stat().st_mtime_ns for p in res["runs"]} == stamps
    assert {p: (out / "runs" / f"{p}.log").read_text() for p in res["runs"]} == logs  # no new training
    assert (out / "bench" / "bench.json").stat().st_mtime_ns == bench_stamp


def _joeynmt_work(tmp_path: Path, hypotheses: list[str] | None = None) -> Path:
    """A JoeyNMT runner's WORK_DIR as run.sh leaves it: start stamp, training log, test scores (and translations)."""
    work = tmp_path / "joey"
    (work / "models" / "transformer").mkdir(parents=True)
    (work / "logs").mkdir()
    (work / "results" / "transformer").mkdir(parents=True)
    start = datetime(2026, 12, 1, 5, 0, 0).timestamp()
    (work / "logs" / "transformer.train.start").write_text(f"{int(start)}\n")
    log = ["2026-12-01 05:00:02,100 - INFO - joeynmt.training - Total params: 7581440",
           "2026-12-01 05:01:00,000 - INFO - joeynmt.training - Epoch   1, Step:      100, Batch Loss:     5.3, "
           "Batch Acc: 0.2, Tokens per Sec:     1200, Lr: 0.000125",
           "2026-12-01 05:02:00,000 - INFO - joeynmt.training - Epoch   1, Step:      200, Batch Loss:     4.9, "
           "Batch Acc: 0.3, Tokens per Sec:     1400, Lr: 0.00025",
           "2026-12-01 05:03:30,000 - INFO - joeynmt.prediction - Evaluation result (greedy): bleu:  11.25, "
           "chrf:   0.41, loss:  40.10, ppl:  12.00, acc:   0.40, generation: 20.1[sec], evaluation: 0.3[sec]",
           "2026-12-01 05:10:00,000 - INFO - joeynmt.prediction - Evaluation result (greedy): bleu:  21.50, "
           "chrf:   0.52, loss:  30.10, ppl:   8.00, acc:   0.50, generation: 19.9[sec], evaluation: 0.3[sec]"]
    (work / "models" / "transformer" / "train.log").write_text("\n".join(log) + "\n")
    (work / "results" / "transformer" / "scores.jsonl").write_text(json.dumps(
        {"set": "test_2016_flickr", "n": 1000, "bleu": 30.5, "chrf": 58.1, "bleu_sig": "nrefs:1|case:mixed",
         "chrf_sig": "nrefs:1"}) + "\n")
    if hypotheses is not None:
        (work / "results" / "transformer" / "test_2016_flickr.test").write_text("\n".join(hypotheses) + "\n")
    return work


def test_joeynmt_peer_is_read_from_the_runner_outputs(tmp_path: Path) -> None:
    """The peer's validation curve (its log's timestamps, from the runner's start stamp), speed and test scores."""
    from mtlab.compare.peers import read_peers
    from mtlab.compare.plots import bleu_vs_time
    from mtlab.compare.report import peers_section

    work = _joeynmt_work(tmp_path, ["Ein Hund läuft.", "Zwei Katzen."])
    (peer,) = read_peers({"joeynmt": {"work_dir": str(work), "model": "transformer"}}).values()
    assert peer["params"] == 7581440 and peer["train_tok_s_median"] == 1300
    assert peer["val_curve"] == [{"elapsed_s": 210.0, "bleu": 11.25}, {"elapsed_s": 600.0, "bleu": 21.5}]
    assert peer["test"]["test_2016_flickr"]["bleu"] == 30.5
    assert peer["hypotheses"] == {"test_2016_flickr": str(work / "results" / "transformer" / "test_2016_flickr.test")}
    peer["time_to_bleu"] = time_to_bleu(peer["val_curve"], [10, 20, 25])
    text = peers_section({"joeynmt": peer}, ["10", "20", "25"])
    assert "| joeynmt | JoeyNMT transformer (best checkpoint) | 7,581,440 |" in text and "10.0 min" in text
    assert bleu_vs_time({}, tmp_path / "t.png", {"joeynmt": peer}) == "t.png"
    with pytest.raises(MTError, match="train it first"):
        read_peers({"other": {"work_dir": str(tmp_path / "none")}})


def test_a_peer_s_translations_must_be_one_per_test_sentence(tmp_path: Path) -> None:
    """A peer tested on other data fails in one line that names the file, instead of a paired test of misaligned
    sentences; a peer without translations of the split is left out of the tests."""
    from mtlab.compare.peers import read_peers
    from mtlab.compare.significance import peer_hypotheses

    peers = read_peers({"joeynmt": {"work_dir": str(_joeynmt_work(tmp_path, ["Ein Hund läuft.", "Zwei Katzen."]))}})
    assert peer_hypotheses(peers, "test_2016_flickr", 2) == {"joeynmt": ["Ein Hund läuft.", "Zwei Katzen."]}
    assert peer_hypotheses(peers, "test_2017_flickr", 2) == {}
    with pytest.raises(MTError, match=r"^peers.joeynmt: \S+test_2016_flickr.test has 2 lines but test_2016_flickr "
                                      r"has 3 sentences"):
        peer_hypotheses(peers, "test_2016_flickr", 3)


def test_sigterm_stops_the_runs_it_started(tmp_path: Path) -> None:
    """`kill` (or a job scheduler's SIGTERM) of mtlab.compare stops its training runs too: left alive, a run would
    go on training beside the one a re-run resumes, both writing the same checkpoints."""
    pid_file = tmp_path / "child.pid"
    child = f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(600)"
    script = (f"import sys\nfrom pathlib import Path\nfrom mtlab.compare.runs import RunPlan, execute, parallel_mode\n"
              f"plan = RunPlan('a', Path({str(tmp_path / 'runs' / 'a')!r}), 'fresh', [sys.executable, '-c', {child!r}], 1)\n"
              f"execute([plan], parallel_mode(2), poll_s=0.05)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[1])
    deadline = time.time() + 60
    while not (pid_file.is_file() and pid_file.read_text()) and time.time() < deadline and parent.poll() is None:
        time.sleep(0.05)
    pid = int(pid_file.read_text())
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=90) == 128 + signal.SIGTERM
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the run was stopped (and reaped), not left training
