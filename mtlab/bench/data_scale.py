"""Data section of the bench: preparation time and peak memory against corpus size.

For each N a synthetic line-aligned corpus of N pairs is built from a real one (Multi30k's training set
repeated, the r-th repetition with `` #r`` appended to both sides, so every line is distinct); then
``python -m mt.data data=text ...`` prepares it twice in fresh subprocesses: the first preparation (tokenizer
training, tokenization, filtering, statistics) and the cached reload. Each child's peak RSS is its own
``ru_maxrss`` (from ``wait4``; it counts resident pages of memory-mapped files too), and the peak of its
anonymous memory (``RssAnon``, sampled from /proc) is reported beside it.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from mt.errors import MTError

REPO = Path(__file__).resolve().parents[2]
_SAMPLE_S = 0.05


@dataclass
class PrepRun:
    """One ``python -m mt.data`` child: wall time, peak memory, and its printed statistics."""

    seconds: float
    peak_rss_mb: float  # ru_maxrss of the child (file-backed mapped pages included)
    peak_anon_mb: float | None  # sampled peak of RssAnon (None where /proc is not available)
    stats: dict


@dataclass
class DataScalePoint:
    """The measurements for one corpus size."""

    pairs: int
    first: PrepRun
    cached: PrepRun

    def row(self) -> dict:
        """Flat form for the table and JSON."""
        train = self.first.stats["splits"]["train"]
        return {
            "pairs": self.pairs,
            "kept": train["kept"],
            "first_s": round(self.first.seconds, 1),
            "first_peak_rss_mb": round(self.first.peak_rss_mb),
            "first_peak_anon_mb": _round(self.first.peak_anon_mb),
            "cached_s": round(self.cached.seconds, 1),
            "cached_peak_rss_mb": round(self.cached.peak_rss_mb),
            "cached_peak_anon_mb": _round(self.cached.peak_anon_mb),
            "us_per_pair": round(1e6 * self.first.seconds / self.pairs, 1),
        }


def rows(points: Sequence[DataScalePoint]) -> list[dict]:
    """One flat dict per corpus size (see :meth:`DataScalePoint.row`)."""
    return [p.row() for p in points]


def measure_data_scale(
    pairs: Sequence[int],
    workdir: Path,
    source_corpus_dir: Path,
    *,
    src: str = "en",
    tgt: str = "de",
    overrides: Sequence[str] = (),
    timeout_s: float = 3600,
    code_dir: Path = REPO,
) -> list[DataScalePoint]:
    """Build an N-pair corpus for each N in ``pairs`` under ``workdir`` and measure its preparation.

    :param source_corpus_dir: a folder with ``{train,val,test_2016_flickr}.{src,tgt}.gz`` (Multi30k).
    :param overrides: extra Hydra overrides for ``python -m mt.data`` (e.g. ``data.tokenizer.vocab_size=500``).
    :param code_dir: the checkout whose ``mt`` package runs (to compare two versions of the code).
    :return: one point per N, in the given order; every preparation starts from an empty cache.
    """
    workdir = Path(workdir)
    points = []
    for n in pairs:
        corpus = build_corpus(Path(source_corpus_dir), n, workdir / f"corpus-{n}", src, tgt)
        cache = workdir / f"cache-{n}"
        if cache.exists():
            raise MTError(f"{cache} exists; give an empty workdir so that the first preparation is measured")
        args = ["data=text", f"data.dir={corpus}", f"data.src={src}", f"data.tgt={tgt}",
                f"paths.cache_dir={cache}", *overrides]
        first = run_prepare(args, workdir / f"run-{n}-first", timeout_s, code_dir)
        cached = run_prepare(args, workdir / f"run-{n}-cached", timeout_s, code_dir)
        points.append(DataScalePoint(n, first, cached))
    return points


def build_corpus(source_dir: Path, pairs: int, out: Path, src: str, tgt: str) -> Path:
    """``{out}/{train,valid,test}.{src,tgt}``: ``pairs`` training pairs from the source's training set.

    Line i is source line ``i mod M`` (M source lines), with `` #r`` appended for repetition r = i div M > 0.
    Validation and test are the source's ``val`` and ``test_2016_flickr`` sets. Reused when already built.
    """
    done = out / "corpus.json"
    if done.is_file() and json.loads(done.read_text()).get("pairs") == pairs:
        return out
    out.mkdir(parents=True, exist_ok=True)
    for lang in (src, tgt):
        base = _read_gz(source_dir / f"train.{lang}.gz")
        with open(out / f"train.{lang}", "w", encoding="utf-8") as f:
            for r in range(-(-pairs // len(base))):
                take = base[: pairs - r * len(base)]
                end = f" #{r}\n" if r else "\n"
                f.write(end.join(take) + end)
        for stem, name in (("val", "valid"), ("test_2016_flickr", "test")):
            (out / f"{name}.{lang}").write_text("\n".join(_read_gz(source_dir / f"{stem}.{lang}.gz")) + "\n")
    done.write_text(json.dumps({"pairs": pairs, "source": str(source_dir)}))
    return out


def run_prepare(overrides: Sequence[str], run_dir: Path, timeout_s: float, code_dir: Path = REPO) -> PrepRun:
    """Run ``python -m mt.data`` with ``overrides`` in a fresh process; its time, peak memory and stats."""
    run_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "mt.data", *overrides, f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    with open(run_dir / "stdout.txt", "wb") as out, open(run_dir / "stderr.txt", "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=code_dir, env=env, stdout=out, stderr=err)
        peak_anon = _AnonSampler(proc.pid)
        timer = threading.Timer(timeout_s, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
            peak_anon.stop()
        seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = (run_dir / "stderr.txt").read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
        raise MTError(f"data preparation failed (exit {proc.returncode}) in {run_dir}: {tail[0]}")
    stats = json.loads((run_dir / "stdout.txt").read_text())
    return PrepRun(seconds, usage.ru_maxrss / 1024, peak_anon.peak_mb, stats)


class _AnonSampler:
    """Polls /proc/<pid>/status in a thread and keeps the largest RssAnon (MB)."""

    def __init__(self, pid: int) -> None:
        self._status = Path(f"/proc/{pid}/status")
        self._peak_kb: int | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(_SAMPLE_S):
            try:
                text = self._status.read_text()
            except OSError:
                return
            for line in text.splitlines():
                if line.startswith("RssAnon:"):
                    kb = int(line.split()[1])
                    self._peak_kb = kb if self._peak_kb is None else max(self._peak_kb, kb)

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float | None:
        return None if self._peak_kb is None else self._peak_kb / 1024


def _read_gz(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8", newline="\n") as f:
        return [line.rstrip("\n") for line in f]


def _round(x: float | None) -> int | None:
    return None if x is None else round(x)


def to_json(points: Sequence[DataScalePoint]) -> list[dict]:
    """Everything measured, including each run's printed statistics."""
    return [asdict(p) for p in points]
