"""Training runs of the comparison: train.py subprocesses that resume, and what each finished run produced.

A run lives in ``<output_dir>/runs/<name>`` with its log beside it (``runs/<name>.log``); the name is the preset,
and with several ``seeds`` the preset for the first seed and ``<preset>.seed<k>`` for the others. A run with a
``results.json`` is finished and never retrained; one with ``checkpoints/last.ckpt`` but no results continues
from that checkpoint; anything else starts fresh.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from mt.api import MTError, checkpoint_step, metric_rows

log = logging.getLogger(__name__)

_PLAIN = re.compile(r"^[\w/.:~+-]+$")
# Every run's first overrides (train_overrides and model_overrides come later and win): its output goes to a log
# file, where a progress bar only adds a line per step.
RUN_DEFAULTS = ("trainer.enable_progress_bar=false",)


@dataclass
class RunPlan:
    """How one preset's run is started (or that it is not)."""

    preset: str
    run_dir: Path
    status: str  # finished | resume | fresh
    command: list[str] = field(default_factory=list)
    seed: int | None = None  # the training seed given to train.py (None: train.yaml's)
    primary: bool = True  # the preset's first-seed run: the one benchmarked, plotted and decoded with wait-k

    @property
    def name(self) -> str:
        return self.run_dir.name

    @property
    def log_path(self) -> Path:
        return self.run_dir.parent / f"{self.run_dir.name}.log"


def run_status(run_dir: Path) -> str:
    if (run_dir / "results.json").is_file():
        return "finished"
    if (run_dir / "checkpoints" / "last.ckpt").is_file():
        return "resume"
    return "fresh"


def _value(path: Path) -> str:
    """A path as a Hydra override value (quoted when it has characters the override grammar treats specially)."""
    text = str(path)
    return text if _PLAIN.match(text) else "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def run_seeds(cfg: DictConfig) -> list[int | None]:
    """The training seeds of every preset: ``cfg.seeds`` (distinct), or [None] (train.yaml's seed)."""
    seeds = list(cfg.get("seeds") or [])
    if len(set(seeds)) != len(seeds):
        raise MTError(f"seeds={seeds} repeats a seed; give distinct seeds")
    return [int(s) for s in seeds] or [None]


def _check_seed(run_dir: Path, seed: int) -> None:
    """A run kept or resumed must have been trained with the seed it now stands for (the first seed's folder has no
    seed in its name, so a run of another seed would silently join the mean)."""
    saved = run_dir / ".hydra" / "config.yaml"
    trained = OmegaConf.load(saved).get("seed") if saved.is_file() else None
    if trained is not None and int(trained) != seed:
        raise MTError(f"{run_dir} was trained with seed={trained}, not seed={seed}; list seed {trained} first in "
                      "seeds=[...] or use another output_dir")


def plan_runs(cfg: DictConfig, output_dir: Path, forwarded: list[str]) -> list[RunPlan]:
    """One plan per preset and seed, with the train.py command line (resuming from last.ckpt when there is one)."""
    unknown = sorted(set(cfg.model_overrides or {}) - set(cfg.models))
    if unknown:
        raise MTError(f"model_overrides names {', '.join(unknown)}, which are not in models={list(cfg.models)}")
    plans = []
    for preset in cfg.models:
        for i, seed in enumerate(run_seeds(cfg)):
            run_dir = output_dir / "runs" / (str(preset) if i == 0 else f"{preset}.seed{seed}")
            status = run_status(run_dir)
            if status != "fresh" and seed is not None:
                _check_seed(run_dir, seed)
            command = [sys.executable, "-m", "mt.cli.train", f"model={preset}", *RUN_DEFAULTS, *forwarded,
                       *map(str, cfg.train_overrides), *map(str, (cfg.model_overrides or {}).get(preset) or []),
                       *([f"seed={seed}"] if seed is not None else []), f"hydra.run.dir={_value(run_dir)}"]
            if status == "resume":
                command.append(f"ckpt_path={_value(run_dir / 'checkpoints' / 'last.ckpt')}")
            plans.append(RunPlan(str(preset), run_dir, status, command, seed, primary=i == 0))
    return plans


PARALLEL_MODES = ("off", "seed", "all")


@dataclass(frozen=True)
class Parallel:
    """``compare.yaml``'s ``parallel``: how the unfinished runs share the machine."""

    mode: str  # off | seed | all | slots
    slots: int = 1  # mode slots: runs at once, the next starting as soon as one ends

    @property
    def shared(self) -> bool:
        """Whether runs train at the same time (and share the cores out)."""
        return self.mode != "off"

    def at_once(self, n_presets: int, n_runs: int) -> int:
        """How many runs train at the same time (the cores are shared out among them)."""
        return {"off": 1, "seed": n_presets, "all": n_runs}.get(self.mode, self.slots)

    def describe(self) -> str:
        return {"off": "one after the other", "seed": "a seed's models at once", "all": "every run at once"}.get(
            self.mode, f"{self.slots} runs at once, the next starting as soon as one ends")


def parallel_mode(value: object) -> Parallel:
    """``compare.yaml``'s ``parallel``: false -> off (one run at a time), true -> seed (a seed's presets at once),
    all (every unfinished run at once: many cores, or one GPU that small models leave mostly idle), a number N ->
    slots (N runs at once; when one ends the next starts, so no core waits for a seed's slower model)."""
    if isinstance(value, bool):
        return Parallel("seed" if value else "off")
    if isinstance(value, int) and value >= 1:
        return Parallel("slots", value) if value > 1 else Parallel("off")
    if str(value) in PARALLEL_MODES:
        return Parallel(str(value))
    raise MTError(f"parallel={value!r} is not a mode; use false (one run at a time), true (a seed's presets "
                  "at once), all (every run at once) or a number N >= 1 (N runs at once, the next starting when "
                  "one ends)")


def run_env(parallel: bool, n_runs: int) -> dict[str, str]:
    """The environment of every run: ours; in parallel, the cores shared out by OMP_NUM_THREADS."""
    env = dict(os.environ)
    if parallel and n_runs > 1:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // n_runs))
    return env


def run_groups(plans: list[RunPlan], par: Parallel) -> list[list[RunPlan]]:
    """The runs started together (:func:`parallel_mode`): one at a time, every preset of one seed at once (the
    presets of a seed share the machine over the same minutes, so a wall-clock budget treats them alike), or
    every run at once; in mode slots one queue, seed by seed, that :func:`execute` works through N at a time."""
    todo = [p for p in plans if p.status != "finished"]
    if par.mode == "off":
        return [[p] for p in todo]
    if par.mode == "all":
        return [todo] if todo else []
    seeds = dict.fromkeys(p.seed for p in plans)  # in the order of cfg.seeds
    by_seed = [group for seed in seeds if (group := [p for p in todo if p.seed == seed])]
    return [[p for group in by_seed for p in group]] if par.mode == "slots" and todo else by_seed


@dataclass
class _Started:
    """A run that was started: its process, its open log file, and when it began."""

    plan: RunPlan
    proc: subprocess.Popen
    logf: object
    start: float


def _start(p: RunPlan, env: dict[str, str], threads_note: str) -> _Started:
    p.run_dir.parent.mkdir(parents=True, exist_ok=True)
    logf = open(p.log_path, "a", encoding="utf-8")  # closed when the run ends
    logf.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} mtlab.compare: {p.status} run: "
               f"{' '.join(p.command)}\n")
    logf.flush()
    log.info("%s: %s run%s; log: %s%s", p.name, p.status,
             f" ({progress_note(p.run_dir)})" if p.status == "resume" else "", p.log_path, threads_note)
    proc = subprocess.Popen(p.command, cwd=os.getcwd(), env=env, stdout=logf, stderr=subprocess.STDOUT)
    return _Started(p, proc, logf, time.perf_counter())


def execute(plans: list[RunPlan], par: Parallel, poll_s: float = 2.0) -> None:
    """Start the runs that are not finished (grouped by :func:`run_groups`, at most ``slots`` of a group at once)
    and wait; a failed run is an error once the others have ended."""
    for p in plans:
        if p.status == "finished":
            log.info("%s: finished earlier (%s), not retrained", p.name, p.run_dir / "results.json")
    failed = []
    for group in run_groups(plans, par):
        slots = par.slots if par.mode == "slots" else len(group)
        together = min(slots, len(group))
        env = run_env(par.shared, slots)
        note = f", OMP_NUM_THREADS={env['OMP_NUM_THREADS']}" if par.shared and together > 1 else ""
        queue, running = list(group), []
        try:
            with _sigterm_raises():
                _work_through(queue, running, slots, env, note, failed, poll_s)
        except BaseException:
            _stop(running)
            raise
    if failed:
        raise MTError(f"training failed: {', '.join(failed)}; fix and re-run: finished runs are kept, "
                      "interrupted ones resume from last.ckpt")


def _work_through(queue: list[RunPlan], running: list[_Started], slots: int, env: dict[str, str], note: str,
                  failed: list[str], poll_s: float) -> None:
    """Start queued runs while fewer than ``slots`` train, and reap each as it ends (failures into ``failed``)."""
    while queue or running:
        while queue and len(running) < slots:
            running.append(_start(queue.pop(0), env, note))
        ended = [r for r in running if r.proc.poll() is not None]
        if not ended:
            time.sleep(poll_s)
        for r in ended:
            running.remove(r)
            r.logf.close()
            rc = r.proc.returncode
            log.info("%s: exit %d after %.0f s", r.plan.name, rc, time.perf_counter() - r.start)
            if rc != 0 or not (r.plan.run_dir / "results.json").is_file():
                failed.append(f"{r.plan.name} (exit {rc}; see {r.plan.log_path})")

def _stop(running: list[_Started], grace_s: float = 60.0) -> None:
    """Terminate our own runs still training and wait for them (a resumed run must not meet its old self)."""
    for r in running:
        if r.proc.poll() is None:
            r.proc.terminate()
    for r in running:
        try:
            r.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            r.proc.kill()
            r.proc.wait()
        r.logf.close()


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM (``kill``, a job scheduler) ends this process as Ctrl-C does, so :func:`execute` stops the runs it
    started instead of leaving them training unattended; the handler before is put back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass
class RunOutcome:
    """What a finished run produced: results.json, its composed config, and its CSV log curves."""

    preset: str
    run_dir: Path
    results: dict
    config: dict  # .hydra/config.yaml as written (unresolved)
    val: list[dict]  # per validation: step, epoch, elapsed_s, bleu, chrf (in time order)
    train_tok_s: list[float]  # logged training target tokens/s

    @property
    def model_target(self) -> str:
        return str(self.config.get("model", {}).get("_target_", ""))

    @property
    def name(self) -> str:
        """The run's folder name: the preset, or ``<preset>.seed<k>`` for a further seed."""
        return self.run_dir.name

    @property
    def seed(self) -> int | None:
        seed = self.config.get("seed")
        return None if seed is None else int(seed)

    def checkpoint(self) -> Path | None:
        """The best checkpoint (else last.ckpt), as a path that exists."""
        for name in ("best_checkpoint", "last_checkpoint"):
            value = self.results.get(name)
            if not value:
                continue
            path = Path(value)
            for candidate in (path, self.run_dir / "checkpoints" / path.name):
                if candidate.is_file():
                    return candidate.resolve()
        last = self.run_dir / "checkpoints" / "last.ckpt"
        return last.resolve() if last.is_file() else None


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


def read_csv_logs(run_dir: Path) -> tuple[list[dict], list[float]]:
    """Validation rows and training tokens/s from every csv/version_*/metrics.csv (all restarts), in order."""
    val: dict[int, dict] = {}
    tok_s: list[float] = []
    for row in metric_rows(run_dir):
        rate = _float(row.get("train/tok_s"))
        if rate is not None:
            tok_s.append(rate)
        bleu = _float(row.get("val/bleu"))
        if bleu is not None:
            step = int(float(row.get("step") or 0))
            val[step] = {"step": step, "epoch": int(float(row.get("epoch") or 0)), "bleu": bleu,
                         "chrf": _float(row.get("val/chrf")), "elapsed_s": _float(row.get("val/elapsed_s"))}
    rows = sorted(val.values(), key=lambda r: (r["elapsed_s"] is None, r["elapsed_s"] or 0.0, r["step"]))
    return rows, tok_s


def progress_note(run_dir: Path) -> str:
    """Where an unfinished run stands: the step of its last.ckpt (where a re-run resumes, mid-epoch with periodic
    checkpoints), and from its CSV logs its validations so far, the best and how long ago."""
    val, _ = read_csv_logs(run_dir)
    last = run_dir / "checkpoints" / "last.ckpt"
    try:
        saved = f"last.ckpt at step {checkpoint_step(last)}" if last.is_file() else "no last.ckpt"
    except MTError as e:
        saved = str(e)
    if not val:
        return f"{saved}, before its first validation"
    best = max(range(len(val)), key=lambda i: val[i]["bleu"])
    ago = len(val) - 1 - best
    return (f"{saved}; {len(val)} validation{'s' if len(val) != 1 else ''}, the last at step {val[-1]['step']}, "
            f"best val BLEU {val[best]['bleu']:.2f} at step {val[best]['step']} "
            f"({ago} validation{'s' if ago != 1 else ''} ago)")


def status_line(plan: RunPlan) -> str:
    """One run's state for ``status=true``: finished (how it stopped, its test BLEU), resumable (where it stands)
    or not started."""
    if plan.status == "fresh":
        return f"{plan.name}: not started"
    if plan.status == "resume":
        return f"{plan.name}: unfinished ({progress_note(plan.run_dir)}); a re-run resumes from its last.ckpt"
    results = json.loads((plan.run_dir / "results.json").read_text())
    test = ", ".join(f"{name} {v['bleu']:.2f}" for name, v in (results.get("test") or {}).items())
    return (f"{plan.name}: finished, stopped by {results.get('stopped_by', 'n/a')} after {results.get('epochs')} "
            f"epochs; test BLEU {test or 'n/a'}")


def read_outcome(preset: str, run_dir: Path) -> RunOutcome:
    results_path = run_dir / "results.json"
    if not results_path.is_file():
        raise MTError(f"{preset}: {results_path} is missing: the run has not finished")
    config_path = run_dir / ".hydra" / "config.yaml"
    config = OmegaConf.to_container(OmegaConf.load(config_path), resolve=False) if config_path.is_file() else {}
    val, tok_s = read_csv_logs(run_dir)
    return RunOutcome(preset, run_dir, json.loads(results_path.read_text()), config, val, tok_s)
