"""Training speed of whole ``train.py`` runs under named sets of overrides, against the defaults.

Some settings are process-wide (``runtime.tune_malloc`` cannot be undone inside a process) or change the process
layout (``trainer=ddp`` with one thread per process), so each measurement is a fresh ``python -m mt.cli.train``
run: the preset, the set's overrides, ``trainer.max_steps=steps`` and no validation or test. Its speed is the run's
own ``fit_tok_s`` (results.json: target tokens trained, all ranks, over the fit's wall-clock time, start-up of the
fit included alike for every set). Runs of the defaults and of each set alternate ``repeats`` times (the order
rotates, so drifts of a shared machine hit all alike); medians are compared as set / defaults.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from omegaconf import DictConfig

from mt.api import LIGHTNING, MTError

DEFAULTS = "defaults"
log = logging.getLogger(__name__)


@dataclass
class RecipeRow:
    """Median training tok/s of one preset, precision and override set; speedup = defaults / this set."""

    preset: str
    precision: str
    name: str  # the set's name (``defaults`` for the plain configuration)
    overrides: list[str]
    tok_s: float
    runs: list[float]
    defaults_vs_set: float  # how many times faster the defaults train than this set (1.0 for the defaults)

    def as_dict(self) -> dict:
        return asdict(self)


def _one_run(preset: str, precision: str, overrides: list[str], cfg: DictConfig, common: list[str],
             workdir: Path) -> float:
    """One fresh train.py run; its fit_tok_s."""
    out = Path(tempfile.mkdtemp(prefix="run-", dir=workdir))
    args = [f"model={preset}", f"trainer.precision={LIGHTNING[precision]}", *common, *overrides,  # the set wins
            f"trainer.max_steps={int(cfg.steps)}", "trainer.max_epochs=-1", "trainer.limit_val_batches=0",
            "trainer.num_sanity_val_steps=0", "test_after_fit=false", "trainer.enable_progress_bar=false",
            "logger=csv", f"hydra.run.dir={out}"]
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    done = subprocess.run([sys.executable, "-m", "mt.cli.train", *args], capture_output=True, text=True, env=env,
                          timeout=int(cfg.timeout_s), check=False)
    if done.returncode != 0:
        raise MTError(f"recipes: train.py {' '.join(args)} failed: {done.stderr.strip().splitlines()[-1:]}")
    return float(json.loads((out / "results.json").read_text())["fit_tok_s"])


def measure_recipes(presets: dict[str, list[str]], precisions: list[str], cfg: DictConfig, workdir: Path) -> dict:
    """Rows for the defaults and every set of ``cfg.sets``, per preset (-> the overrides all its runs get) and
    precision."""
    sets = {DEFAULTS: [], **{str(k): [str(o) for o in v] for k, v in cfg.sets.items()}}
    for name, overrides in sets.items():
        if any(o.lstrip("+~").startswith("trainer.precision=") for o in overrides):
            raise MTError(f"recipes: set {name} sets trainer.precision, which each row is labelled with; use "
                          "precisions=[...] instead")
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for preset, common in presets.items():
        for precision in precisions:
            runs: dict[str, list[float]] = {name: [] for name in sets}
            names = list(sets)
            for r in range(int(cfg.repeats)):
                for name in names[r % len(names):] + names[: r % len(names)]:  # rotate the order each repeat
                    runs[name].append(round(_one_run(preset, precision, sets[name], cfg, common, workdir), 1))
                    log.info("recipes %s %s %s: %.0f tok/s", preset, precision, name, runs[name][-1])
            base = statistics.median(runs[DEFAULTS])
            for name, overrides in sets.items():
                med = statistics.median(runs[name])
                rows.append(RecipeRow(preset, precision, name, overrides, med, runs[name],
                                      round(base / med, 3)).as_dict())
    return {"steps": int(cfg.steps), "repeats": int(cfg.repeats), "overrides": presets, "rows": rows}
