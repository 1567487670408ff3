"""A recipe sweep's table: what each training run reached within fixed wall-clock budgets.

    python -m mtlab.sweep 'runs=[outputs/sweeps/base,outputs/sweeps/dropout0.3]' minutes=[6,12]

Settings: conf/sweep.yaml. Each run is a train.py output folder (finished or not: only its CSV log is read). A row
gives the overrides that set the run apart (its ``.hydra/overrides.yaml`` minus those every run shares), the best
greedy validation BLEU among the validations that ended within each budget (what model selection would have kept
by then), the optimizer steps by then, and the median logged training tokens/s. Prints a markdown table and
writes ``sweep.json`` beside Hydra's log of this command.
"""

from __future__ import annotations

import json
import logging
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from mt.api import CONF_DIR, MTError, atomic_write_text, one_line_errors
from mtlab.compare.runs import read_csv_logs

log = logging.getLogger(__name__)


@dataclass
class SweepRow:
    """One run of a sweep, read within each budget."""

    run_dir: str
    overrides: list[str]  # the run's own overrides (those shared by every run of the sweep left out)
    bleu_at: dict[str, float | None]  # "<minutes>" -> best validation BLEU that ended within it (None: none did)
    steps_at: dict[str, int | None]  # "<minutes>" -> optimizer step of the last validation within it
    best_bleu: float | None  # over the whole run
    minutes_run: float | None  # elapsed time of the last validation
    train_tok_s_median: float | None


def _overrides(run_dir: Path) -> list[str]:
    path = run_dir / ".hydra" / "overrides.yaml"
    return [str(o) for o in OmegaConf.load(path)] if path.is_file() else []


def read_row(run_dir: Path, minutes: list[float], shared: set[str]) -> SweepRow:
    """The budgets' view of one run folder."""
    val, tok_s = read_csv_logs(run_dir)
    timed = [v for v in val if v["elapsed_s"] is not None]
    if not timed:
        raise MTError(f"{run_dir}: no validation in csv/*/metrics.csv yet; is it a train.py output folder?")
    bleu_at, steps_at = {}, {}
    for m in minutes:
        within = [v for v in timed if v["elapsed_s"] <= m * 60]
        bleu_at[f"{m:g}"] = max((v["bleu"] for v in within), default=None)
        steps_at[f"{m:g}"] = within[-1]["step"] if within else None
    return SweepRow(str(run_dir), [o for o in _overrides(run_dir) if o not in shared], bleu_at, steps_at,
                    max(v["bleu"] for v in timed), round(timed[-1]["elapsed_s"] / 60, 1),
                    statistics.median(tok_s) if tok_s else None)


def sweep_table(run_dirs: list[Path], minutes: list[float]) -> list[SweepRow]:
    """Rows for ``run_dirs`` (in order) at each budget in ``minutes``."""
    missing = [str(d) for d in run_dirs if not d.is_dir()]
    if missing:
        raise MTError(f"runs: {', '.join(missing)} not found; give train.py output folders (hydra.run.dir)")
    every = [set(_overrides(d)) for d in run_dirs]
    shared = set.intersection(*every) if len(every) > 1 else set()
    return [read_row(d, minutes, shared) for d in run_dirs]


def render(rows: list[SweepRow], minutes: list[float]) -> str:
    """The markdown table."""
    keys = [f"{m:g}" for m in minutes]
    head = ["run", "overrides", *(f"BLEU @{k} min" for k in keys), *(f"steps @{k} min" for k in keys),
            "best BLEU (minutes run)", "train tok/s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
    fmt = lambda x, spec: "-" if x is None else format(x, spec)  # noqa: E731
    for r in rows:
        cells = [Path(r.run_dir).name, " ".join(r.overrides) or "(shared only)",
                 *(fmt(r.bleu_at[k], ".2f") for k in keys), *(fmt(r.steps_at[k], ",") for k in keys),
                 f"{fmt(r.best_bleu, '.2f')} ({fmt(r.minutes_run, '.1f')})", fmt(r.train_tok_s_median, ",.0f")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


@hydra.main(config_path=str(CONF_DIR), config_name="sweep", version_base="1.3")
def main(cfg: DictConfig) -> None:
    minutes = [float(m) for m in cfg.minutes]
    with one_line_errors():
        if not cfg.runs:
            raise MTError("runs is empty; give the sweep's train.py output folders: 'runs=[DIR1,DIR2]'")
        rows = sweep_table([Path(str(d)) for d in cfg.runs], minutes)
    print(render(rows, minutes), flush=True)
    out = Path(HydraConfig.get().runtime.output_dir) / "sweep.json"
    atomic_write_text(out, json.dumps({"minutes": minutes, "rows": [asdict(r) for r in rows]}, indent=2) + "\n")
    log.info("sweep: %s", out)


if __name__ == "__main__":
    main()
