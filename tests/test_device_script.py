"""tools/device/converged.sh, the one-command converged comparison for a lent GPU: its command lines compose.

The script's steps run with a stand-in ``python3`` that records its arguments, so this checks, in seconds, what a
GPU session cannot afford to find out there: that every override it builds parses and composes (conf/compare.yaml
and, for each preset, conf/train.yaml), and that its outputs land where the device tool fetches them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from mt.config import compose
from tests.utils import ROOT

RECORDER = """#!{python}
import json, sys
with open(sys.argv[0] + ".calls", "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
"""  # {python}: the real interpreter (``env python3`` would find this stand-in itself)


def test_converged_script_composes_its_commands(tmp_path: Path) -> None:
    fake = tmp_path / "bin" / "python3"
    fake.parent.mkdir()
    fake.write_text(RECORDER.replace("{python}", sys.executable))
    fake.chmod(0o755)
    out, cmp_dir = tmp_path / "out", tmp_path / "cmp"
    env = {**os.environ, "PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}", "OUT": str(out),
           "COMPARE_DIR": str(cmp_dir), "RUN_MINUTES": "7", "TRAIN": "trainer.max_epochs=60,logger=csv",
           "DATA": "data.limit=100", "EXTRA": "device=cpu"}
    r = subprocess.run(["bash", "tools/device/converged.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    calls = [json.loads(line) for line in (fake.parent / "python3.calls").read_text().splitlines()]
    assert ["-m", "mt.data", "data.limit=100"] in calls  # the data prepared once, before the parallel runs
    (compare_args,) = [c[2:] for c in calls if c[:2] == ["-m", "mtlab.compare"]]
    cfg = compose("compare", compare_args)
    assert cfg.parallel == "all" and list(cfg.seeds) == [1, 2, 3] and cfg.output_dir == str(cmp_dir)
    assert cfg.device == "cpu" and list(cfg.simultaneous.presets) == []
    train_overrides = list(cfg.train_overrides)
    assert train_overrides == ["experiment=multi30k_converged", "trainer.max_time=00:00:07:00",
                               "trainer.max_epochs=60", "logger=csv"]
    assert dict(cfg.model_overrides) == {p: [f"recipe=multi30k_{p}"] for p in cfg.models}  # the tuned recipes
    for preset in cfg.models:  # what every run's train.py composes (mtlab.compare.runs.plan_runs's order)
        run = compose("train", [f"model={preset}", *train_overrides, *cfg.model_overrides[preset], "data.limit=100"])
        assert run.trainer.max_time == "00:00:07:00" and run.trainer.max_epochs == 60 and run.data.max_tokens == 2048
        assert run.callbacks.early_stopping.patience == 10 and run.average_best
    assert (out / "log.txt").is_file() and (out / "compare.tgz").is_file()
