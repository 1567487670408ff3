"""Kill-and-resume soak: SIGKILL a real small training run (``python train.py``) many times, resume each time.

    python -m mtlab.soak [soak_profile=quick|full] [kills=N] [seed=0] [arch=transformer] [limit=200] [epochs=2]

Settings: conf/soak.yaml. First an uninterrupted reference run, then the same run killed ``kills`` times at random moments (during
startup, at a random point of a random training step, and *inside* checkpoint writes, which
:class:`SlowCheckpointWrites` stretches out) and resumed each time with ``ckpt_path=last`` in the same output
folder (started afresh while no ``last.ckpt`` exists yet). Checked: every resume succeeds, every ``*.ckpt`` loads
with :func:`mt.checkpoint.load_checkpoint` after every kill, the resumed run's per-step training losses (from
``csv/version_*/metrics.csv``) and validation scores equal the reference run's, its final weights, optimizer and
schedule state are identical, and it kept the same best-k checkpoint files. Prints one JSON summary on stdout
(progress goes to stderr); exit status 0 when all of it held.

Runs on CPU in deterministic mode with one thread per process; the data slice is prepared once (by the reference
run) in ``<workdir>/cache``. The helpers are also used by ``tests/test_faults.py``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, OmegaConf

from mt.api import CONF_DIR, csv_versions

TRAIN_COMMAND = [sys.executable, "-m", "mt.cli.train"]  # the library's entry point, no checkout path

class SlowCheckpointWrites(Callback):
    """Testing only: every checkpoint file is written in ``chunks`` pieces with pauses (``seconds`` in all).

    It slows down ``torch.save`` into an open file, which is what :func:`mt.checkpoint.atomic_torch_save` does
    with its temporary file, so the real atomic-write code runs and a kill can land in the middle of a write.
    Add it through the config: ``+callbacks.slow_writes._target_=mtlab.soak.SlowCheckpointWrites``.
    """

    def __init__(self, seconds: float = 0.3, chunks: int = 10) -> None:
        self.seconds, self.chunks = float(seconds), max(1, int(chunks))

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if getattr(torch.save, "_slow_writes", False):
            return
        real_save, pause, chunks = torch.save, self.seconds / self.chunks, self.chunks

        def slow_save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
            if isinstance(f, (str, os.PathLike)):
                return real_save(obj, f, *args, **kwargs)
            buffer = io.BytesIO()
            real_save(obj, buffer, *args, **kwargs)
            data = buffer.getvalue()
            size = -(-len(data) // chunks)
            for start in range(0, len(data), size):
                f.write(data[start:start + size])
                f.flush()
                time.sleep(pause)
            return None

        slow_save._slow_writes = True  # type: ignore[attr-defined]
        torch.save = slow_save


# ------------------------------------------------------------------------------------------ run configuration
def run_overrides(cfg: DictConfig, out: Path, cache: Path, slow_write_s: float = 0.0) -> list[str]:
    """Overrides of a small (debug=tiny), deterministic CPU run that checkpoints every ``cfg.every`` steps."""
    overrides = [
        "debug=tiny", f"model={cfg.arch}", f"hydra.run.dir={out}", f"paths.cache_dir={cache}",
        f"paths.data_dir={cfg.data_dir}", f"data.limit={cfg.limit}", f"data.max_tokens={cfg.max_tokens}",
        "trainer.deterministic=true", f"trainer.max_epochs={cfg.epochs}", "++logger.csv.flush_logs_every_n_steps=1",
        "test_after_fit=false", f"callbacks.periodic_checkpoint.every_n_train_steps={cfg.every}",
    ]
    if slow_write_s > 0:
        overrides += ["+callbacks.slow_writes._target_=mtlab.soak.SlowCheckpointWrites",
                      f"+callbacks.slow_writes.seconds={slow_write_s}"]
    return overrides


def child_env() -> dict[str, str]:
    """Environment of the training processes: offline, one thread (reproducible and fair to a shared machine)."""
    return {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


# ------------------------------------------------------------------------------------------------ reading a run
def read_metrics(path: Path, column: str) -> dict[int, float]:
    """``step -> value`` of one metrics.csv column; rows a kill cut short are skipped."""
    out: dict[int, float] = {}
    try:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                try:
                    if row.get(column):
                        out[int(row["step"])] = float(row[column])
                except (TypeError, ValueError):
                    continue
    except (OSError, csv.Error):
        pass
    return out


def run_metrics(run: Path, column: str) -> dict[int, float]:
    """``step -> value`` over every (re)start of a run; a later start overrides the steps it repeated."""
    merged: dict[int, float] = {}
    for version in csv_versions(run):
        merged.update(read_metrics(version / "metrics.csv", column))
    return merged


def temp_files(folder: Path) -> set[str]:
    """Temporary files of atomic checkpoint writes in ``folder``."""
    return {p.name for p in folder.glob(".*.ckpt.*.tmp")} if folder.is_dir() else set()


def check_checkpoints(folder: Path) -> tuple[int, list[str]]:
    """(number of ``*.ckpt`` files, those that do not load with :func:`mt.checkpoint.load_checkpoint`)."""
    from mt.api import CheckpointError, load_checkpoint

    paths = sorted(folder.glob("*.ckpt")) if folder.is_dir() else []
    corrupt = []
    for path in paths:
        try:
            load_checkpoint(path)
        except (CheckpointError, FileNotFoundError):
            if path.exists():  # not one that the run deleted (top-k rotation) while we looked
                corrupt.append(str(path))
    return len(paths), corrupt


def same_state(a: Any, b: Any) -> bool:
    """Bitwise equality of nested checkpoint data (tensors compared with torch.equal)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype \
            and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_state(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def final_state_identical(run: Path, reference: Path) -> bool:
    """The two runs' last.ckpt hold the same weights, optimizer and scheduler state, and step.

    Not compared: the epoch counter and loop progress, which say whether the final last.ckpt was written at the end
    of the last epoch or (by Lightning's ModelCheckpoint.on_train_end, when that process had not written one yet)
    at the end of training: two records of the same finished state.
    """
    from mt.api import load_checkpoint

    a, b = (load_checkpoint(r / "checkpoints" / "last.ckpt") for r in (run, reference))
    keys = ("state_dict", "optimizer_states", "lr_schedulers", "global_step")
    return all(same_state(a.get(k), b.get(k)) for k in keys)


# -------------------------------------------------------------------------------------------------- killing
@dataclass
class Trigger:
    """When to kill: ``startup`` (``delay`` s after launch), ``step`` (``delay`` s after the run logged training
    step ``step``), ``write`` (``delay`` s after a checkpoint temporary file appeared), or ``none``."""

    mode: str
    delay: float = 0.0
    step: int = 0


@dataclass
class Attempt:
    """One launch of train.py."""

    index: int
    resumed_from: int | None  # global step of the last.ckpt it resumed from; None = fresh start
    trigger: str
    killed: bool = False
    during_write: bool = False  # a checkpoint temporary file of this attempt existed at the kill
    rc: int | None = None
    seconds: float = 0.0
    first_step: int | None = None  # first training step this attempt logged
    first_step_s: float | None = None  # seconds from launch until it logged a training step (end of startup)
    log: str = ""


def _new_version_step(run: Path, old: set[str]) -> int | None:
    """Highest training step logged by a logger version created after ``old`` was listed."""
    new = [v for v in csv_versions(run) if v.name not in old]
    if not new:
        return None
    steps = read_metrics(new[-1] / "metrics.csv", "train/loss")
    return max(steps) if steps else None


def run_attempt(cmd: list[str], run: Path, log_path: Path, trigger: Trigger, index: int,
                resumed_from: int | None, timeout: float = 600.0) -> Attempt:
    """Run ``cmd`` until it ends or ``trigger`` fires, then SIGKILL it; returns what happened."""
    ckpt_dir = run / "checkpoints"
    old_versions = {v.name for v in csv_versions(run)}
    old_temps = temp_files(ckpt_dir)
    attempt = Attempt(index, resumed_from, trigger.mode, log=str(log_path))
    t0 = time.monotonic()
    kill_at: float | None = None
    next_look = t0
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=child_env())
        try:
            while proc.poll() is None:
                now = time.monotonic()
                if now - t0 > timeout:
                    raise TimeoutError(f"attempt {index} ran longer than {timeout:.0f} s; see {log_path}")
                if attempt.first_step_s is None and (trigger.mode == "step" or now >= next_look):
                    next_look = now + 0.05
                    if _new_version_step(run, old_versions) is not None:
                        attempt.first_step_s = round(now - t0, 2)
                if kill_at is None:
                    if trigger.mode == "startup":
                        kill_at = t0 + trigger.delay
                    elif trigger.mode == "write" and temp_files(ckpt_dir) - old_temps:
                        kill_at = now + trigger.delay
                    elif trigger.mode == "step":
                        step = _new_version_step(run, old_versions)
                        if step is not None and step >= trigger.step:
                            kill_at = now + trigger.delay
                if kill_at is not None and now >= kill_at:
                    attempt.during_write = bool(temp_files(ckpt_dir) - old_temps)
                    proc.kill()
                    proc.wait()
                    attempt.killed = True
                    break
                time.sleep(0.002 if trigger.mode == "write" else 0.01)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    attempt.rc = proc.returncode
    attempt.seconds = round(time.monotonic() - t0, 2)
    new = [v for v in csv_versions(run) if v.name not in old_versions]
    steps = read_metrics(new[0] / "metrics.csv", "train/loss") if new else {}
    attempt.first_step = min(steps) if steps else None
    return attempt


@dataclass
class SoakResult:
    """What a kill-and-resume soak found; ``ok`` when every check held."""

    kills_requested: int
    kills: int = 0
    kills_during_checkpoint_write: int = 0
    kills_by_trigger: dict[str, int] = field(default_factory=dict)
    attempts: int = 0
    resumes: int = 0
    resumes_failed: int = 0  # attempts that ended with an error on their own (not killed by us)
    resume_position_errors: int = 0  # resumed attempts that did not continue at the checkpoint's step
    fresh_starts: int = 0  # attempts started without a last.ckpt (killed before the first one)
    resume_points: list[int] = field(default_factory=list)  # global step of each last.ckpt resumed from
    checkpoint_loads: int = 0  # *.ckpt files loaded after the kills (each file counted each time)
    corrupt_checkpoints: list[str] = field(default_factory=list)
    max_temp_files_left: int = 0  # temporary files of interrupted writes seen after a kill (removed on resume)
    temp_files_at_end: int = 0
    reference_steps: int = 0
    steps_compared: int = 0
    loss_mismatches: list[tuple[int, float, float]] = field(default_factory=list)
    # reference steps that no log version holds: only step G - 1 of a resume from step G can be missing (its
    # row is written just after the checkpoint of step G, so a kill in between loses the row but not the step)
    missing_steps: list[int] = field(default_factory=list)
    val_bleu_match: bool = False
    final_state_identical: bool = False
    checkpoint_files_match: bool = False  # the same best-k files and last.ckpt as the reference run
    finished: bool = False
    reference_seconds: float = 0.0
    soak_seconds: float = 0.0
    ok: bool = False
    failures: list[str] = field(default_factory=list)


def pick_trigger(rng: random.Random, resumed_from: int | None, total_steps: int, every: int, startup_s: float,
                 slow_write_s: float, mode: str | None = None) -> Trigger:
    """A random kill moment that surely comes before the run ends; ``mode`` forces the kind.

    ``step`` kills a fresh start only after its first checkpoint (so that the next attempt resumes), ``write``
    lands inside the attempt's first checkpoint write, ``startup`` before the attempt's first training step
    (``startup_s``: how long the reference run took to get there).
    """
    first = every + 1 if resumed_from is None else resumed_from + 1  # earliest step worth killing at
    last = min(first - 1 + 2 * every, total_steps - 2)  # leave the run a step, so the kill comes first
    if mode is None:
        mode = rng.choices(["step", "write", "startup"], weights=[5, 4, 1])[0]
    if mode == "write" and (slow_write_s <= 0 or last < first + every):
        mode = "step"
    if mode == "step" and last < first:
        mode = "startup"
    if mode == "startup":
        return Trigger("startup", delay=rng.uniform(0.1, 0.9) * startup_s)
    if mode == "write":
        return Trigger("write", delay=rng.uniform(0.0, 0.5 * slow_write_s))
    return Trigger("step", delay=rng.uniform(0.0, 0.25), step=rng.randint(first, last))


def soak(cfg: DictConfig, modes: list[str] | None = None, reference: Path | None = None) -> SoakResult:
    """Reference run (unless ``reference`` is an existing finished run of the same settings), then the killed run.

    cfg: conf/soak.yaml's settings; ``modes`` forces the kind of each kill in turn (tests).
    """
    workdir = Path(cfg.workdir).resolve()
    kills, every, slow_write_s, attempt_timeout = int(cfg.kills), int(cfg.every), float(cfg.slow_write_s), float(
        cfg.attempt_timeout_s)
    workdir.mkdir(parents=True, exist_ok=True)
    cache, run, logs = workdir / "cache", workdir / "killed", workdir / "logs"
    logs.mkdir(exist_ok=True)
    rng = random.Random(int(cfg.seed))
    result = SoakResult(kills_requested=kills)

    def command(out: Path, ckpt_path: str | None, slow: float) -> list[str]:
        cmd = [*TRAIN_COMMAND, *run_overrides(cfg, out, cache, slow_write_s=slow)]
        return cmd + ([f"ckpt_path={ckpt_path}"] if ckpt_path else [])

    t0 = time.monotonic()
    if reference is None:
        reference = workdir / "reference"
        ref = run_attempt(command(reference, None, 0.0), reference, logs / "reference.log", Trigger("none"), 0,
                          None, attempt_timeout)
        if ref.rc != 0:
            result.failures.append(f"reference run failed (rc {ref.rc}); see {ref.log}")
            return result
        startup_s = ref.first_step_s or 2.0
    else:
        startup_s = 2.0
    result.reference_seconds = round(time.monotonic() - t0, 1)
    ref_losses = run_metrics(reference, "train/loss")
    result.reference_steps = len(ref_losses)
    total_steps = max(ref_losses) + 1

    from mt.api import load_checkpoint

    t1 = time.monotonic()
    resume_points = result.resume_points
    index = 0
    while True:
        index += 1
        last = run / "checkpoints" / "last.ckpt"
        resumed_from = int(load_checkpoint(last)["global_step"]) if last.is_file() else None
        killing = result.kills < kills
        if killing:
            forced = modes[result.kills % len(modes)] if modes else None
            trigger = pick_trigger(rng, resumed_from, total_steps, every, startup_s, slow_write_s, forced)
        else:
            trigger = Trigger("none")
        # writes are stretched only where a kill is aimed at one, so that the other kills land as they come
        cmd = command(run, "last" if resumed_from is not None else None,
                      slow_write_s if trigger.mode == "write" else 0.0)
        attempt = run_attempt(cmd, run, logs / f"attempt-{index:03d}.log", trigger, index, resumed_from,
                              attempt_timeout)
        result.attempts += 1
        if resumed_from is None:
            result.fresh_starts += 1
        else:
            result.resumes += 1
            resume_points.append(resumed_from)
            if attempt.first_step is not None and attempt.first_step != resumed_from:
                result.resume_position_errors += 1
                result.failures.append(f"attempt {index} resumed from step {resumed_from} but logged step "
                                       f"{attempt.first_step} first; see {attempt.log}")
        print(f"[soak] attempt {index}: {'resume from step ' + str(resumed_from) if resumed_from is not None else 'fresh'}"
              f", trigger {trigger.mode}{' step ' + str(trigger.step) if trigger.mode == 'step' else ''}: "
              f"{'killed' + (' during a checkpoint write' if attempt.during_write else '') if attempt.killed else 'rc ' + str(attempt.rc)}"
              f" after {attempt.seconds:.1f} s", file=sys.stderr, flush=True)
        if attempt.killed:
            result.kills += 1
            result.kills_during_checkpoint_write += attempt.during_write
            result.kills_by_trigger[trigger.mode] = result.kills_by_trigger.get(trigger.mode, 0) + 1
            n, corrupt = check_checkpoints(run / "checkpoints")
            result.checkpoint_loads += n
            result.corrupt_checkpoints += corrupt
            result.max_temp_files_left = max(result.max_temp_files_left, len(temp_files(run / "checkpoints")))
            continue
        if attempt.rc != 0:
            result.resumes_failed += 1
            result.failures.append(f"attempt {index} failed on its own (rc {attempt.rc}); see {attempt.log}")
            break
        result.finished = True
        break
    result.soak_seconds = round(time.monotonic() - t1, 1)
    n, corrupt = check_checkpoints(run / "checkpoints")
    result.checkpoint_loads += n
    result.corrupt_checkpoints += corrupt
    result.temp_files_at_end = len(temp_files(run / "checkpoints"))
    if result.finished:
        compare(result, run, reference)
    result.ok = (result.finished and not result.failures and not result.corrupt_checkpoints
                 and not result.loss_mismatches and result.val_bleu_match and result.final_state_identical
                 and result.checkpoint_files_match and result.temp_files_at_end == 0)
    return result


def compare(result: SoakResult, run: Path, reference: Path) -> None:
    """Losses, validation BLEU and final state of the killed-and-resumed run against the reference."""
    want, got = run_metrics(reference, "train/loss"), run_metrics(run, "train/loss")
    common = sorted(set(want) & set(got))
    result.steps_compared = len(common)
    result.loss_mismatches = [(s, got[s], want[s]) for s in common if got[s] != want[s]]
    result.missing_steps = sorted(set(want) - set(got))
    unexplained = sorted(set(result.missing_steps) - {g - 1 for g in result.resume_points})
    if unexplained:
        result.failures.append(f"training steps missing from the logs: {unexplained[:10]}")
    extra = sorted(set(got) - set(want))
    if extra:
        result.failures.append(f"steps logged that the reference does not have: {extra[:10]}")
    result.val_bleu_match = run_metrics(run, "val/bleu") == run_metrics(reference, "val/bleu")
    result.final_state_identical = final_state_identical(run, reference)
    result.checkpoint_files_match = ({p.name for p in (run / "checkpoints").glob("*.ckpt")} ==
                                     {p.name for p in (reference / "checkpoints").glob("*.ckpt")})


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="soak")
def main(cfg: DictConfig) -> None:
    print(f"[soak] working in {cfg.workdir}", file=sys.stderr, flush=True)
    result = soak(cfg)
    summary = {"command": "python -m mtlab.soak " + " ".join(HydraConfig.get().overrides.task),
               "settings": OmegaConf.to_container(cfg, resolve=True), **asdict(result)}
    summary["loss_mismatches"] = summary["loss_mismatches"][:20]
    print(json.dumps(summary, indent=2))
    sys.exit(0 if result.ok else 1)


if __name__ == "__main__":
    main()
