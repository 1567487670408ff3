"""Real training runs of tiny models on a Multi30k slice: the whole pipeline, both architectures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mt.checkpoint import CheckpointError, average_checkpoints, load_checkpoint
from mt.device import has_bf16_units
from mt.errors import MTError
from mt.pipeline import train
from mt.runlogs import metric_rows
from mt.translate import Translator
from tests.utils import ROOT, compose_train, tiny_overrides

ARCHS = ["transformer", "lstm"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def train_losses(out: Path) -> dict[int, float]:
    """Per-step training losses from the CSV logger, over every (re)start of the run."""
    return {int(r["step"]): float(r["train/loss"]) for r in metric_rows(out) if "train/loss" in r}


@pytest.mark.parametrize("arch", ARCHS)
def test_fast_dev_run(arch, tmp_path, cache):
    cfg = compose_train(tiny_overrides(arch, tmp_path / "run", cache) + ["trainer.fast_dev_run=true"])
    result = train(cfg)
    assert result.global_step == 1
    assert result.num_parameters > 0


@pytest.mark.parametrize("arch", ARCHS)
def test_train_validate_test_and_translate(arch, tmp_path, cache):
    out = tmp_path / "run"
    result = train(compose_train(tiny_overrides(arch, out, cache) + ["trainer.max_epochs=2"]))
    assert result.epochs == 2 and result.global_step > 0 and result.stopped_by == "max_epochs"
    assert result.best_bleu is not None and result.best_checkpoint
    assert set(result.test) == {"test_2016_flickr"}
    assert result.test["test_2016_flickr"]["n_sentences"] == 200
    assert "nrefs:1" in result.test["test_2016_flickr"]["bleu_signature"]
    assert (out / "results.json").is_file() and (out / "checkpoints" / "last.ckpt").is_file()
    ckpt = load_checkpoint(result.best_checkpoint)  # weights_only=True: plain data only
    assert ckpt["tokenizer"]["sha256"]
    translator = Translator.from_checkpoint(result.best_checkpoint, device="cpu")
    hyps = translator.translate(["A man is riding a bike.", "", "Two dogs play in the snow."])
    assert len(hyps) == 3 and hyps[1] == ""


def test_resume_continues_exactly(tmp_path, cache):
    """Two epochs in one go == one epoch, then resume from last.ckpt for the second: same steps, same losses."""
    base = tiny_overrides("transformer", tmp_path / "full", cache) + ["trainer.max_epochs=2", "test_after_fit=false"]
    full = train(compose_train(base))
    first = tiny_overrides("transformer", tmp_path / "part", cache) + ["trainer.max_epochs=1", "test_after_fit=false"]
    part = train(compose_train(first))
    resumed = train(compose_train(tiny_overrides("transformer", tmp_path / "part", cache) +
                                  ["trainer.max_epochs=2", "test_after_fit=false", "ckpt_path=last"]))
    assert part.global_step < full.global_step == resumed.global_step
    want, got = train_losses(tmp_path / "full"), train_losses(tmp_path / "part")
    assert sorted(got) == sorted(want)
    for step in want:
        assert got[step] == pytest.approx(want[step], rel=1e-5, abs=1e-6), step


def test_linear_schedule_decays_to_min_lr_at_the_end_of_the_budget(tmp_path, cache):
    """optim.schedule=linear: warmup, then the rate falls linearly with the budget spent (here max_steps; the
    max_time of an hour barely counts), to 1/max_steps of the peak at the last step, never under min_lr."""
    steps, warmup, peak, floor = 8, 2, 1.0e-3, 2.0e-4
    train(compose_train(tiny_overrides("transformer", tmp_path / "run", cache) + [
        "optim.schedule=linear", f"optim.warmup_steps={warmup}", f"optim.lr={peak}", f"optim.min_lr={floor}",
        f"trainer.max_steps={steps}", "trainer.max_epochs=100", "trainer.max_time=00:01:00:00",
        "test_after_fit=false"]))
    rates = {int(r["step"]): float(v) for r in metric_rows(tmp_path / "run") for k, v in r.items()
             if k.startswith("lr-")}
    assert sorted(rates) == list(range(steps))
    for step in range(steps):  # the rate of step k is set after step k - 1, with k steps done
        decay = peak * (1 - step / steps)
        want = min(peak * (step + 1) / warmup, decay) if step < warmup else max(floor, decay)
        assert rates[step] == pytest.approx(want, rel=2e-3), step
    assert rates[1] < peak and rates[steps - 1] == pytest.approx(floor)  # decay caps the ramp; 1/8 < floor 1/5
    assert json.loads((tmp_path / "run" / "results.json").read_text())["stopped_by"] == "max_steps"


@pytest.mark.parametrize(("overrides", "reason"), [
    (["optim.lr=1e-12", "optim.min_lr=0", "callbacks.early_stopping.patience=1", "trainer.max_epochs=30"],
     "early_stopping"),  # no learning: validation BLEU never improves on the first validation's
    (["trainer.max_time=00:00:00:01", "trainer.max_epochs=1000", "callbacks.early_stopping=null"], "max_time"),
    # (without early stopping: a fast machine runs the 6 tiny epochs patience 5 needs within the second)
])
def test_results_say_why_training_stopped(overrides, reason, tmp_path, cache):
    """results.json's stopped_by tells a converged run (early stopping) from one cut by a limit."""
    result = train(compose_train(tiny_overrides("transformer", tmp_path / "run", cache, limit=60) + overrides +
                                 ["test_after_fit=false"]))
    assert result.stopped_by == reason
    if reason == "early_stopping":
        assert result.epochs == 2  # best at the first validation, no gain at the second: patience 1 spent


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed", "auto"])
def test_mixed_precision_on_cpu_and_max_steps_mid_epoch(precision, tmp_path, cache):
    result = train(compose_train(tiny_overrides("transformer", tmp_path / "run", cache) +
                                 [f"trainer.precision={precision}", "trainer.max_steps=4", "test_after_fit=false"]))
    losses = train_losses(tmp_path / "run")
    assert result.global_step == 4 and len(losses) == 4
    auto = "bf16-mixed" if has_bf16_units(torch.device("cpu")) else "32-true"  # this machine's CPU decides
    trained_in = {"auto": auto, "16-mixed": "bf16-mixed"}.get(precision, precision)  # Lightning: no fp16 on CPU
    assert result.precision == trained_in
    assert all(torch.isfinite(torch.tensor(list(losses.values()))))


def test_multirun_trains_both_architectures(tmp_path, cache):
    """python train.py -m model=lstm,transformer: one Hydra sweep, one run folder per architecture."""
    overrides = [o for o in tiny_overrides("lstm", tmp_path, cache, limit=60)
                 if not o.startswith(("paths.output_dir", "model"))]
    r = subprocess.run([sys.executable, "train.py", "-m", "model=lstm,transformer", *overrides,
                        "model.decoder_layers=1", "model.encoder_layers=1", "trainer.fast_dev_run=true",
                        f"hydra.sweep.dir={tmp_path / 'sweep'}", "hydra.sweep.subdir=${hydra.job.num}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    for num, target in ((0, "LSTMSeq2Seq"), (1, "Transformer")):
        composed = (tmp_path / "sweep" / str(num) / ".hydra" / "config.yaml").read_text()
        assert f"mt.models.{'lstm' if num == 0 else 'transformer'}.{target}" in composed
        assert (tmp_path / "sweep" / str(num) / "results.json").is_file()


def test_nonfinite_loss_stops_with_step(tmp_path, cache):
    cfg = compose_train(tiny_overrides("lstm", tmp_path / "run", cache) + ["optim.lr=1e30", "optim.warmup_steps=0"])
    with pytest.raises(FloatingPointError, match="non-finite training loss at step"):
        train(cfg)


def test_init_from_and_averaging(tmp_path, cache):
    out = tmp_path / "run"
    first = train(compose_train(tiny_overrides("lstm", out, cache) + ["trainer.max_epochs=2", "average_best=true",
                                                                     "data.limit=60"]))
    assert first.averaged_checkpoint and Path(first.averaged_checkpoint).is_file()
    averaged = first.test_averaged["test_2016_flickr"]  # the averaged weights are tested too, as their own model
    assert averaged["n_sentences"] == 60 and "nrefs:1" in averaged["bleu_signature"]
    assert json.loads((out / "results.json").read_text())["test_averaged"] == first.test_averaged
    Translator.from_checkpoint(first.averaged_checkpoint, device="cpu").translate(["A dog."])
    avg = average_checkpoints([first.best_checkpoint, first.last_checkpoint], tmp_path / "avg.ckpt")
    assert load_checkpoint(avg)["averaged_from"]
    # same parameter names and shapes, another computation (another bridge): refused, not averaged
    other = load_checkpoint(first.last_checkpoint)
    other["hyper_parameters"]["model"]["bridge"] = "other"
    torch.save(other, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="other.ckpt is not a checkpoint of the same model as .*another arch"):
        average_checkpoints([first.best_checkpoint, tmp_path / "other.ckpt"], tmp_path / "bad.ckpt")
    assert not (tmp_path / "bad.ckpt").exists()
    tuned = train(compose_train(tiny_overrides("lstm", tmp_path / "ft", cache) +
                                [f"init_from={first.best_checkpoint}", "test_after_fit=false"]))
    assert tuned.global_step > 0
    with pytest.raises(CheckpointError, match="do not fit the configured model"):
        train(compose_train(tiny_overrides("transformer", tmp_path / "bad", cache) +
                            [f"init_from={first.best_checkpoint}"]))


def test_fine_tuning_on_other_data_keeps_the_checkpoint_tokenizer(tmp_path, cache):
    """init_from on a different slice (its own tokenizer would differ) fine-tunes with the checkpoint's tokenizer."""
    first = train(compose_train(tiny_overrides("transformer", tmp_path / "a", cache, limit=200) +
                                ["test_after_fit=false"]))
    own = load_checkpoint(first.last_checkpoint)["tokenizer"]["sha256"]
    other = tiny_overrides("transformer", tmp_path / "b", cache, limit=120) + ["data.src=de", "data.tgt=en"]
    fresh = train(compose_train(other + ["trainer.max_steps=1", "test_after_fit=false"]))
    assert load_checkpoint(fresh.last_checkpoint)["tokenizer"]["sha256"] != own  # that data trains another one
    tuned = train(compose_train(other + [f"init_from={first.last_checkpoint}", "test_after_fit=false"]))
    assert tuned.global_step > 0 and load_checkpoint(tuned.last_checkpoint)["tokenizer"]["sha256"] == own


def test_one_validation_batch_scores_that_batch(tmp_path, cache):
    """limit_val_batches=1 (an int: one batch, not "all") validates a subset instead of failing the count check."""
    result = train(compose_train(tiny_overrides("lstm", tmp_path / "run", cache) + [
        "trainer.limit_val_batches=1", "+trainer.limit_test_batches=1"]))
    assert result.best_bleu is not None
    assert 0 < result.test["test_2016_flickr"]["n_sentences"] < 200


def test_missing_resume_checkpoint_is_an_error(tmp_path, cache):
    with pytest.raises(MTError, match="does not exist"):
        train(compose_train(tiny_overrides("lstm", tmp_path / "run", cache) + ["ckpt_path=last"]))


def test_validation_beam_is_its_own_and_test_uses_beam_size(tmp_path, cache, monkeypatch):
    """decode.validation_beam_size=1: greedy model selection; the test after fitting keeps decode.beam_size."""
    import mt.module

    seen: dict[str, set[int]] = {"validate": set(), "test": set()}
    real = mt.module.decode_batch

    def spy(model, batch, cfg):
        from lightning.pytorch.trainer.states import TrainerFn

        stage = "test" if spy.trainer.state.fn == TrainerFn.TESTING else "validate"
        seen[stage].add(cfg.beam_size)
        return real(model, batch, cfg)

    original_setup = mt.module.TranslationModule.setup

    def setup(self, stage):  # the trainer the module is attached to, for the spy
        spy.trainer = self.trainer
        return original_setup(self, stage)

    monkeypatch.setattr(mt.module, "decode_batch", spy)
    monkeypatch.setattr(mt.module.TranslationModule, "setup", setup)
    result = train(compose_train(tiny_overrides("transformer", tmp_path / "run", cache) +
                                 ["decode.validation_beam_size=1", "data.limit=60"]))
    assert seen == {"validate": {1}, "test": {2}}  # tiny_overrides: decode.beam_size=2
    assert result.best_bleu is not None and result.fit_tok_s > 0
