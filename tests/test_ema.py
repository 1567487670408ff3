"""mt.lightning_private.ModelEMA: its average, where it is used (validation, checkpoints, test), resuming."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_dir
from torch import nn

from mt.checkpoint import MODEL_PREFIX, RAW_WEIGHTS, load_checkpoint
from mt.errors import MTError
from mt.evaluate import evaluate
from mt.lightning_private import ModelEMA, ema_update
from mt.pipeline import train
from mt.runlogs import metric_rows
from mt.translate import Translator, model_from_checkpoint
from tests.utils import CONF, compose_train, tiny_overrides

DECAY = 0.9


class Toy(L.LightningModule):
    """A LightningModule holding its network as ``.model``, as TranslationModule does; records the weights it
    trains, validates and tests with."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
        self.trained: list[torch.Tensor] = []  # flat weights after each optimizer step
        self.validated: list[torch.Tensor] = []
        self.tested: list[torch.Tensor] = []

    def flat(self) -> torch.Tensor:
        return torch.cat([p.detach().flatten() for p in self.model.parameters()]).clone()

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.mse_loss(self.model(x), y)

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self.trained.append(self.flat())

    def validation_step(self, batch, batch_idx):
        if batch_idx == 0:
            self.validated.append(self.flat())
        self.log("val/score", -nn.functional.mse_loss(self.model(batch[0]), batch[1]))

    def test_step(self, batch, batch_idx):
        if batch_idx == 0:
            self.tested.append(self.flat())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


def loader() -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, 3, generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=4)


def fit(tmp_path, epochs: int, ckpt_path=None, module: Toy | None = None) -> tuple[Toy, L.Trainer, ModelEMA]:
    module = module or Toy()
    ema = ModelEMA(decay=DECAY, window_fraction=1 / 9)
    checkpoint = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=-1,
                                                    filename="e{epoch}")
    trainer = L.Trainer(max_epochs=epochs, callbacks=[ema, checkpoint], logger=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, accelerator="cpu")
    trainer.fit(module, train_dataloaders=loader(), val_dataloaders=loader(), ckpt_path=ckpt_path,
                weights_only=True)
    return module, trainer, ema


def train_losses(out) -> dict[int, float]:
    return {int(r["step"]): float(r["train/loss"]) for r in metric_rows(out) if "train/loss" in r}


def flat_state(state: dict[str, torch.Tensor], module: Toy) -> torch.Tensor:
    """A checkpoint's weights of ``module.model``, flat, in parameter order."""
    return torch.cat([state["model." + k].flatten() for k in module.model.state_dict()])


def expected_ema(trained: list[torch.Tensor]) -> torch.Tensor:
    """The average by hand: the first update copies, the n-th lerps by 1 - min(decay, (1 + n) / (10 + n)),
    which is window_fraction=1/9."""
    avg = trained[0].clone()
    for n, w in enumerate(trained[1:], start=1):
        avg += (1 - min(DECAY, (1 + n) / (10 + n))) * (w - avg)
    return avg


def test_ema_update_lerps_with_the_warmup_decay():
    avg, cur = [torch.zeros(3)], [torch.ones(3)]
    ema_update(0.999, window_fraction=1 / 9)(avg, cur, torch.tensor(2))  # d = 1 - 1 / (1 + 3 / 9) = 1 / 4
    assert torch.allclose(avg[0], torch.full((3,), 0.75))
    ema_update(0.5, window_fraction=None)(avg, [torch.zeros(3)], torch.tensor(100))
    assert torch.allclose(avg[0], torch.full((3,), 0.375))


def test_validation_checkpoints_and_test_use_the_average_and_training_the_raw_weights(tmp_path):
    module, trainer, ema = fit(tmp_path, epochs=2)
    steps = len(loader())
    assert ema.n_averaged == 2 * steps == len(module.trained)
    # validation after epoch 1 saw the average of the first epoch's weights, then training went on from raw ones
    assert torch.allclose(module.validated[0], expected_ema(module.trained[:steps]), atol=1e-6)
    assert not torch.allclose(module.validated[0], module.trained[steps - 1])
    assert torch.equal(module.flat(), module.trained[-1])  # fitting ended with the raw weights in the module
    ckpt = torch.load(tmp_path / "last.ckpt", weights_only=True)
    state, raw = flat_state(ckpt["state_dict"], module), flat_state(ckpt["current_model_state"], module)
    assert torch.allclose(state, expected_ema(module.trained), atol=1e-6)
    assert torch.equal(raw, module.trained[-1])
    trainer.test(module, dataloaders=loader(), ckpt_path=tmp_path / "last.ckpt", weights_only=True, verbose=False)
    assert torch.equal(module.tested[0], state)  # evaluating a checkpoint uses its averaged weights


def test_resuming_continues_both_the_raw_weights_and_the_average(tmp_path):
    whole, _, whole_ema = fit(tmp_path / "whole", epochs=3)
    fit(tmp_path / "part", epochs=1)
    resumed, _, resumed_ema = fit(tmp_path / "part", epochs=3, ckpt_path=tmp_path / "part" / "last.ckpt")
    assert resumed_ema.n_averaged == whole_ema.n_averaged
    assert torch.allclose(resumed.trained[-1], whole.trained[-1], atol=1e-6)
    want = torch.load(tmp_path / "whole" / "last.ckpt", weights_only=True)["state_dict"]
    got = torch.load(tmp_path / "part" / "last.ckpt", weights_only=True)["state_dict"]
    for k in want:
        assert torch.allclose(got[k], want[k], atol=1e-6), k


@pytest.mark.parametrize("kwargs, message", [({"decay": 1.0}, "decay=1.0 is outside"),
                                             ({"window_fraction": 0.0}, "window_fraction=0.0 is outside"),
                                             ({"every_n_steps": 0}, "every_n_steps=0 must be >= 1")])
def test_bad_settings_are_one_line_errors(kwargs, message):
    with pytest.raises(MTError, match=message):
        ModelEMA(**kwargs)


def test_pipeline_with_ema_tests_and_translates_the_averaged_checkpoint(tmp_path):
    """callbacks=[default,ema] in a real tiny run: checkpoints carry the average and the raw weights, the best
    checkpoint is tested and loads for translation, best-k averaging works on averaged checkpoints, and a run
    resumed without the callback trains on from the raw weights."""
    out = tmp_path / "run"
    result = train(compose_train(tiny_overrides("transformer", out, tmp_path / "cache", limit=60) +
                                 ["callbacks=[default,ema]", "trainer.max_epochs=2", "average_best=true"]))
    ckpt = load_checkpoint(result.best_checkpoint)
    assert set(ckpt["state_dict"]) == set(ckpt["current_model_state"])
    assert any(not torch.equal(v, ckpt["current_model_state"][k]) for k, v in ckpt["state_dict"].items())
    assert int(ckpt["averaging_state"]["n_averaged"]) == ckpt["global_step"]
    assert result.test["test_2016_flickr"]["n_sentences"] == 60 and result.test_averaged
    assert len(Translator.from_checkpoint(result.best_checkpoint, device="cpu").translate(["A dog."])) == 1

    # evaluate.py weights=raw / compare_weights=raw: the optimizer's weights of the same checkpoint beside the average
    for weights, key in (("checkpoint", "state_dict"), ("raw", RAW_WEIGHTS)):
        model, _ = model_from_checkpoint(ckpt, "best", weights=weights)
        for name, value in model.state_dict().items():
            assert torch.equal(value, ckpt[key][MODEL_PREFIX + name]), (weights, name)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="evaluate", overrides=[
            f"ckpt={result.best_checkpoint}", f"compare_with={result.best_checkpoint}", "compare_weights=raw",
            "decode.beam_size=1", "significance_samples=50", f"paths.output_dir={tmp_path / 'ev'}",
            f"paths.cache_dir={tmp_path / 'cache'}"])
    evaluate(cfg)
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert (metrics["weights"], metrics["compare_weights"]) == ("checkpoint", "raw")
    assert metrics["significance"]["test_2016_flickr"]["n_sentences"] == 60
    assert len((tmp_path / "ev" / "hyps.test_2016_flickr.B.txt").read_text(encoding="utf-8").splitlines()) == 60

    # resumed without the callback, training goes on from the raw weights: the same losses as the run above
    part = tiny_overrides("transformer", tmp_path / "part", tmp_path / "cache", limit=60) + ["test_after_fit=false"]
    train(compose_train(part + ["callbacks=[default,ema]"]))
    train(compose_train(part + ["trainer.max_epochs=2", "ckpt_path=last"]))
    want, got = train_losses(out), train_losses(tmp_path / "part")
    assert sorted(got) == sorted(want)
    for step in want:
        assert got[step] == pytest.approx(want[step], rel=1e-5, abs=1e-6), step
