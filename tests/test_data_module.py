"""TranslationDataModule on real Multi30k: counts, DDP shares, cache reuse, Lightning resume, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from datasets import Dataset
from lightning.pytorch.callbacks import ModelCheckpoint

from mt.batch import Batch
from mt.data import DataError, TranslationDataModule
from mt.tokenizer import Tokenizer

REPO = Path(__file__).resolve().parents[1]
TINY_TOKENIZER = ["data.tokenizer.vocab_size=200", "data.tokenizer.hard_vocab_limit=false"]


def files_of(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def test_multi30k_en_de_counts_and_stats(multi30k_datamodule):
    dm = multi30k_datamodule
    stats = dm.stats()
    splits = stats["splits"]
    assert [splits[s]["sentences"] for s in ("train", "validation", "test_2016_flickr")] == [
        29000,
        1014,
        1000,
    ]
    assert splits["train"]["kept"] == 29000 - sum(splits["train"]["dropped"].values())
    assert splits["validation"]["kept"] == 1014 and splits["test_2016_flickr"]["kept"] == 1000
    assert set(splits["train"]["dropped"]) == {"empty", "too_long", "ratio"}
    assert splits["train"]["src_tokens"] > 29000 and splits["train"]["tgt_tokens"] > 29000
    assert stats["vocab_size"] == dm.tokenizer.vocab_size == 8000 and stats["pair"] == "en-de"
    assert dm.test_names == ["test_2016_flickr"]
    refs = dm.references("validation")
    assert len(refs) == 1014 and refs[0] == "Eine Gruppe von Männern lädt Baumwolle auf einen Lastwagen"
    assert dm.sources("test_2016_flickr")[0] == "A man in an orange hat starring at something."
    batch = next(iter(dm.val_dataloader()))
    assert isinstance(batch, Batch) and batch.tgt_in.shape == batch.tgt_out.shape
    assert isinstance(dm.test_dataloader(), torch.utils.data.DataLoader)


def test_eval_text_reads_one_split_without_a_tokenizer(multi30k_datamodule, tmp_path):
    """Scoring reads an evaluation split's text from the corpus alone (the same text the data module holds), with
    no tokenizer trained or loaded (one named here does not even exist) and no other split touched."""
    from mt.data.corpus import eval_text

    dm = multi30k_datamodule
    cfg = replace(dm.cfg, tokenizer=replace(dm.cfg.tokenizer, path=str(tmp_path / "none")))
    text = eval_text(cfg, tmp_path / "cache", "test_2016_flickr")
    assert text.sources == dm.sources("test_2016_flickr") and text.references == dm.references("test_2016_flickr")
    assert [p.name.split("-")[:2] for p in (tmp_path / "cache" / "raw").iterdir()] == [["text", "test_2016_flickr"]]
    with pytest.raises(DataError, match="unknown evaluation split 'train'; available: validation, test_2016_flickr"):
        eval_text(cfg, tmp_path / "cache", "train")


def fake_trainer(rank: int, world_size: int, distributed_sampler: bool = False) -> SimpleNamespace:
    return SimpleNamespace(
        global_rank=rank,
        world_size=world_size,
        _accelerator_connector=SimpleNamespace(use_distributed_sampler=distributed_sampler),
    )


@pytest.mark.parametrize("world_size", [2, 3])
def test_ddp_ranks_share_the_data(multi30k_datamodule, world_size):
    dm0 = multi30k_datamodule
    modules = []
    for rank in range(world_size):
        dm = TranslationDataModule.__new__(TranslationDataModule)
        dm.__dict__.update(dm0.__dict__)  # same prepared data, another rank
        dm.trainer = fake_trainer(rank, world_size)
        dm.setup("fit")
        modules.append(dm)
    val = [i for dm in modules for b in dm.val_dataloader() for i in b.ids.tolist()]
    assert sorted(val) == list(range(1014))  # every validation sentence exactly once over all ranks
    samplers = [dm.train_dataloader().batch_sampler for dm in modules]
    assert len({len(s) for s in samplers}) == 1
    train = [i for s in samplers for b in s for i in b]
    assert len(train) == len(set(train))

    dm = TranslationDataModule.__new__(TranslationDataModule)
    dm.__dict__.update(dm0.__dict__)
    dm.trainer = fake_trainer(0, 2, distributed_sampler=True)
    with pytest.raises(DataError, match="use_distributed_sampler must be false"):
        dm.setup("fit")


def test_second_preparation_reuses_the_cache(compose_cfg, shared_data_dir, tmp_path, monkeypatch):
    slice_ = [
        f"paths.data_dir={shared_data_dir}",
        f"paths.cache_dir={tmp_path}",
        "data.limit=5000",
        "data.tokenizer.vocab_size=4000",
    ]
    cfg = compose_cfg(*slice_)
    start = time.perf_counter()
    TranslationDataModule(cfg.data, cfg.paths).prepare_data()
    first = time.perf_counter() - start
    before = files_of(tmp_path)

    def forbidden(*args, **kwargs):
        raise AssertionError("the second preparation must not read, train or tokenize again")

    for owner, name in [
        (Tokenizer, "train"),
        (Tokenizer, "encode"),
        (Dataset, "map"),
        (Dataset, "from_generator"),
    ]:
        monkeypatch.setattr(owner, name, forbidden)
    start = time.perf_counter()
    dm = TranslationDataModule(cfg.data, cfg.paths)
    dm.prepare_data()
    dm.setup()
    second = time.perf_counter() - start
    assert files_of(tmp_path) == before  # no new or rewritten file
    assert dm.stats()["splits"]["train"]["sentences"] == 5000
    print(f"\nMulti30k 5000-pair slice: first preparation {first:.2f} s, second {second:.3f} s")

    monkeypatch.undo()
    monkeypatch.setattr(
        Tokenizer, "train", forbidden
    )  # other filter settings: new tokenized splits, same model
    other = compose_cfg(*slice_, "data.max_len=20")
    assert (
        TranslationDataModule(other.data, other.paths).stats()["splits"]["train"]["dropped"]["too_long"] > 0
    )


class Recorder(L.LightningModule):
    """Records the ids of every training batch; learns nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[tuple[int, list[int]]] = []
        self.val_ids: list[list[int]] = []  # per validation run

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        self.seen.append((self.current_epoch, batch.ids.tolist()))
        return (self.w**2).sum()

    def on_validation_epoch_start(self) -> None:
        self.val_ids.append([])

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self.val_ids[-1] += batch.ids.tolist()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_lightning_resumes_mid_epoch_with_the_same_batches(compose_cfg, shared_data_dir, tmp_path):
    cfg = compose_cfg(
        f"paths.data_dir={shared_data_dir}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        "data.limit=400",
        "data.max_tokens=400",
        *TINY_TOKENIZER,
    )

    def fit(ckpt_path: str | None = None) -> Recorder:
        module = Recorder()
        trainer = L.Trainer(
            max_epochs=2,
            accelerator="cpu",
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            use_distributed_sampler=False,
            callbacks=[ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=4, save_top_k=-1)],
        )
        trainer.fit(
            module, datamodule=TranslationDataModule(cfg.data, cfg.paths, seed=5), ckpt_path=ckpt_path
        )
        return module

    first = fit()
    assert len(first.val_ids) == 2 and all(sorted(ids) == list(range(400)) for ids in first.val_ids)
    full = first.seen
    epoch0 = [ids for e, ids in full if e == 0]
    epoch1 = [ids for e, ids in full if e == 1]
    assert len(epoch0) == len(epoch1) > 8 and epoch0 != epoch1  # Lightning reached set_epoch
    assert sorted(i for ids in epoch1 for i in ids) == sorted(i for ids in epoch0 for i in ids)
    for step in (4, len(epoch0) + 4):  # mid epoch 0, mid epoch 1
        ckpt = next((tmp_path / "ckpt").glob(f"*step={step}.ckpt"))
        assert fit(str(ckpt)).seen == full[step:]


def test_cli_prints_one_json_object(multi30k_datamodule, shared_data_dir, session_cache_dir, tmp_path):
    env = {**os.environ, "MT_DATA_DIR": str(shared_data_dir), "MT_CACHE_DIR": str(session_cache_dir)}
    r = subprocess.run(
        [sys.executable, "-m", "mt.data", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    stats = json.loads(r.stdout)  # stdout holds the JSON and nothing else
    assert [stats["splits"][s]["sentences"] for s in ("train", "validation", "test_2016_flickr")] == [
        29000,
        1014,
        1000,
    ]
    assert (
        stats["vocab_size"] == 8000 and 0 < stats["padding_fraction"] < 0.1 and stats["prepare_seconds"] < 5
    )

    bad = subprocess.run(
        [sys.executable, "-m", "mt.data", "data.src=xx", f"hydra.run.dir={tmp_path / 'bad'}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip().splitlines()[-1].startswith("error: unknown language 'xx' (data.src)")
