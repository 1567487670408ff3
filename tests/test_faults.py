"""Kills and failures: atomic checkpoint writes, exact mid-epoch resume, SIGKILL-and-resume, a failing DDP rank."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mt.checkpoint import atomic_torch_save, load_checkpoint
from mt.config import compose
from mt.pipeline import train
from mtlab.soak import SlowCheckpointWrites, run_metrics, soak, temp_files
from tests.utils import ROOT, SHARED_DATA, compose_train, tiny_overrides


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def deterministic():
    """trainer.deterministic=true switches torch to deterministic algorithms process-wide; switch back after."""
    yield
    torch.use_deterministic_algorithms(False)


# -- atomic writes -------------------------------------------------------------------------------------------
def _slow_write(path: str) -> None:
    """In a child process: write a new checkpoint over ``path`` through the real atomic code, slowly."""
    SlowCheckpointWrites(seconds=30, chunks=100).setup(None, None, "fit")
    atomic_torch_save({"state_dict": {"w": torch.ones(200_000)}, "hyper_parameters": {}, "version": 2}, path)


def test_kill_during_a_checkpoint_write_leaves_the_previous_one(tmp_path):
    path = tmp_path / "last.ckpt"
    atomic_torch_save({"state_dict": {"w": torch.zeros(3)}, "hyper_parameters": {}, "version": 1}, path)
    before = path.read_bytes()
    # spawn, not fork: a forked child of this multi-threaded process (torch's thread pools) can deadlock
    child = multiprocessing.get_context("spawn").Process(target=_slow_write, args=(str(path),))
    child.start()
    try:
        deadline = time.monotonic() + 180  # the child imports torch first; slow on a loaded machine
        while not any(p.stat().st_size > 0 for p in tmp_path.glob(".last.ckpt.*.tmp")):
            assert time.monotonic() < deadline and child.is_alive(), "the write never started"
            time.sleep(0.005)
        os.kill(child.pid, signal.SIGKILL)  # halfway through writing the temporary file
    finally:
        if child.is_alive():  # never leave a writer behind (pytest would wait for it at exit)
            child.kill()
        child.join()
    assert path.read_bytes() == before  # the previous checkpoint, untouched ...
    assert load_checkpoint(path)["version"] == 1  # ... and loadable
    (tmp,) = tmp_path.glob(".last.ckpt.*.tmp")  # the partial new one stayed a temporary file
    assert 0 < tmp.stat().st_size < 800_000


# -- exact resume, mid-epoch and right before a validation ---------------------------------------------------
def test_resume_mid_epoch_and_at_epoch_end_equals_uninterrupted_run(tmp_path, cache, deterministic):
    """Every-step checkpoints of a 2-epoch run; resuming from the middle of epoch 0 and from its last periodic
    checkpoint gives exactly the uninterrupted run's per-step losses and validation BLEU."""
    every = tmp_path / "every"
    common = ["trainer.max_epochs=2", "test_after_fit=false", "trainer.deterministic=true", "data.max_tokens=600",
              "optim.plateau_patience=0",  # LSTM: dropout (RNG) and a plateau schedule that reacts to every BLEU
              "callbacks.checkpoint.save_top_k=1",  # epoch 1 does not beat epoch 0: no best-k save at its end
              "callbacks.periodic_checkpoint.every_n_train_steps=5"]  # ... so only this one refreshes last.ckpt
    ref = train(compose_train(tiny_overrides("lstm", tmp_path / "ref", cache) + common + [
        "+callbacks.every._target_=mt.lightning_private.PeriodicCheckpoint", f"+callbacks.every.dirpath={every}",
        "+callbacks.every.every_n_train_steps=1", "+callbacks.every.save_top_k=-1",
        "+callbacks.every.filename='s{step}'", "+callbacks.every.auto_insert_metric_name=false"]))
    n = ref.global_step // 2  # steps per epoch
    assert len(list((tmp_path / "ref" / "checkpoints").glob("step*.ckpt"))) == 1
    assert load_checkpoint(tmp_path / "ref" / "checkpoints" / "last.ckpt")["global_step"] == ref.global_step
    saved = sorted(int(p.stem[1:]) for p in every.glob("s*.ckpt"))
    # no periodic save where a validation follows (Lightning would resume after it and skip that validation)
    assert saved == [s for s in range(1, 2 * n + 1) if s % n]
    want_loss, want_bleu = run_metrics(tmp_path / "ref", "train/loss"), run_metrics(tmp_path / "ref", "val/bleu")
    assert len(want_bleu) == 2
    for step in (n // 2, n - 1):
        out = tmp_path / f"resumed{step}"
        resumed = train(compose_train(tiny_overrides("lstm", out, cache) + common + [f"ckpt_path={every}/s{step}.ckpt"]))
        assert resumed.global_step == ref.global_step
        got_loss = run_metrics(out, "train/loss")
        assert min(got_loss) == step  # continued at the checkpoint's step, not from the start of the epoch
        assert got_loss == {s: v for s, v in want_loss.items() if s >= step}  # exactly equal floats
        assert run_metrics(out, "val/bleu") == want_bleu  # epoch 0's validation was not skipped


# -- SIGKILL at random moments, resume each time -------------------------------------------------------------
@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_matches_uninterrupted_run(tmp_path):
    seed = int(os.environ.get("MT_FAULT_SEED", random.randrange(2**31)))
    print(f"kill moments seed (MT_FAULT_SEED): {seed}")
    # a kill at a random point after a random step, inside a checkpoint write, during startup (before the
    # first step: imports, data, restoring the checkpoint); each later attempt resumes from what the last left
    cfg = compose("soak", [f"seed={seed}", "kills=3", "limit=200", "epochs=2", "every=3", "slow_write_s=0.3",
                           f"data_dir={SHARED_DATA}", f"workdir={tmp_path}"])
    result = soak(cfg, modes=["step", "write", "startup"])
    info = f"seed {seed}: {result}"
    assert result.kills == 3 and result.finished, info
    assert result.kills_by_trigger == {"step": 1, "write": 1, "startup": 1}, info
    assert result.kills_during_checkpoint_write >= 1 and result.max_temp_files_left >= 1, info
    assert result.resumes == 3 and result.fresh_starts == 1, info  # every attempt after the first resumed ...
    assert result.resumes_failed == 0 and result.resume_position_errors == 0, info  # ... where it should
    assert result.corrupt_checkpoints == [] and result.checkpoint_loads >= 3, info
    assert result.temp_files_at_end == 0, info  # leftovers of interrupted writes are removed on resume
    assert result.loss_mismatches == [] and result.steps_compared >= result.reference_steps - result.kills, info
    assert result.val_bleu_match and result.final_state_identical and result.checkpoint_files_match, info
    assert result.failures == [] and result.ok, info
    assert not temp_files(tmp_path / "killed" / "checkpoints")


# -- DDP: one rank fails -------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("at, expect", [
    ("step", "injected fault on rank 1 at step 3"),  # the other rank is in (or enters) a collective
    ("init", "injected fault on rank 1 before joining the process group"),  # the other rank waits for it
])
def test_a_failing_ddp_rank_stops_every_rank(tmp_path, at, expect):
    out = tmp_path / "run"
    overrides = [o for o in tiny_overrides("transformer", out, tmp_path / "cache", limit=150)
                 if not o.startswith("paths.output_dir")]
    env = {**os.environ, "MT_DATA_DIR": str(SHARED_DATA), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(ROOT / "train.py"), *overrides, f"hydra.run.dir={out}", "trainer=ddp",
           "trainer.accelerator=cpu", "trainer.devices=2", "+callbacks.fail._target_=tests.faults.FailOnRank",
           "+callbacks.fail.rank=1", "+callbacks.fail.step=3", f"+callbacks.fail.at={at}"]
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, env=env, cwd=ROOT, timeout=240)  # a hang fails here
    stderr = r.stderr.decode(errors="replace")
    assert r.returncode != 0, stderr[-3000:]
    assert expect in stderr
    print(f"rc {r.returncode} after {time.monotonic() - t0:.1f} s")
    # no rank left behind (capture_output also waited for every process holding the pipes)
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(out) not in ps
