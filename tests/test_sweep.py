"""mtlab.sweep: a recipe sweep's table from train.py output folders (CSV logs and Hydra overrides)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mt.api import MTError
from mtlab.sweep import render, sweep_table
from tests.utils import run_module

HEAD = "epoch,step,train/loss,train/tok_s,val/bleu,val/chrf,val/elapsed_s\n"


def fake_run(root: Path, name: str, overrides: list[str], vals: list[tuple[int, float, float]], tok_s: float) -> Path:
    """A train.py output folder: .hydra/overrides.yaml and one CSV log with (step, BLEU, elapsed_s) validations."""
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    rows = [f"0,{step - 1},3.0,{tok_s},,,\n0,{step},,,{bleu},50.0,{t}\n" for step, bleu, t in vals]
    (run / "csv" / "version_0").mkdir(parents=True)
    (run / "csv" / "version_0" / "metrics.csv").write_text(HEAD + "".join(rows))
    return run


def test_rows_take_the_best_validation_within_each_budget(tmp_path: Path) -> None:
    base = fake_run(tmp_path, "base", ["experiment=multi30k_40min"], [(100, 10.0, 200.0), (200, 9.0, 350.0),
                                                                     (300, 20.0, 700.0)], 5000)
    drop = fake_run(tmp_path, "drop", ["experiment=multi30k_40min", "model.dropout=0.3"],
                    [(100, 8.0, 400.0)], 4000)
    rows = sweep_table([base, drop], [5, 6, 12])
    assert rows[0].overrides == [] and rows[1].overrides == ["model.dropout=0.3"]  # the shared one left out
    assert rows[0].bleu_at == {"5": 10.0, "6": 10.0, "12": 20.0}  # best so far, not the last (9.0 at 350 s)
    assert rows[0].steps_at == {"5": 100, "6": 200, "12": 300}
    assert rows[1].bleu_at == {"5": None, "6": None, "12": 8.0} and rows[1].best_bleu == 8.0
    assert rows[0].train_tok_s_median == 5000 and rows[0].minutes_run == pytest.approx(700 / 60, abs=0.05)
    table = render(rows, [5, 6, 12])
    assert "| drop | model.dropout=0.3 | - | - | 8.00 |" in table


def test_a_folder_that_is_not_a_run_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(MTError, match="not found"):
        sweep_table([tmp_path / "missing"], [6])
    (tmp_path / "empty").mkdir()
    with pytest.raises(MTError, match="no validation"):
        sweep_table([tmp_path / "empty"], [6])


def test_cli_prints_the_table_and_writes_json(tmp_path: Path) -> None:
    run = fake_run(tmp_path, "base", ["model=lstm"], [(50, 12.5, 100.0)], 3000)
    out = tmp_path / "out"
    proc = run_module("mtlab.sweep", f"runs=[{run}]", "minutes=[2]", f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| base | model=lstm | 12.50 | 50 | 12.50 (1.7) | 3,000 |" in proc.stdout
    assert json.loads((out / "sweep.json").read_text())["rows"][0]["bleu_at"] == {"2": 12.5}
    bad = run_module("mtlab.sweep", f"hydra.run.dir={out}")
    assert bad.returncode != 0 and "runs is empty" in bad.stderr
