"""SupervisedModel with tiny networks: losses, metrics, optimizers and checkpoint round trips."""
from __future__ import annotations

import pytorch_lightning as pl
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from factory.data.spec import InputSpec
from factory.errors import ConfigError
from factory.models import SmallCNN, SupervisedModel, TabularMLP

ADAM = {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 0.01}


class TinyNet(nn.Module):
    """A Linear(4, k) double that ignores categoricals."""

    def __init__(self, outputs: int) -> None:
        super().__init__()
        self.linear = nn.Linear(4, outputs)

    def forward(self, x_num, x_cat):
        return self.linear(x_num)


def _batches(task: str, n: int = 64, batch: int = 16):
    torch.manual_seed(0)
    x = torch.randn(n, 4)
    y = {"binary": (x[:, 0] > 0).long(), "multiclass": (x[:, 0] > 0).long() + (x[:, 1] > 0).long(),
         "regression": x[:, 0] * 2.0}[task]
    empty = torch.zeros(n, 0, dtype=torch.long)
    batches = [(x[i:i + batch], empty[i:i + batch], y[i:i + batch]) for i in range(0, n, batch)]
    return DataLoader(batches, batch_size=None)


def _trainer(tmp_path, **kwargs) -> pl.Trainer:
    return pl.Trainer(default_root_dir=tmp_path, max_epochs=kwargs.pop("max_epochs", 3), logger=False,
                      enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                      **kwargs)


@pytest.mark.parametrize("task, classes, expected", [
    ("binary", 2, {"val/accuracy", "val/f1", "val/auroc", "val/pr_auc", "val/loss"}),
    ("multiclass", 3, {"val/accuracy", "val/f1_macro", "val/loss"}),
    ("regression", 1, {"val/mse", "val/mae", "val/r2", "val/loss"}),
])
def test_task_metrics_are_logged(tmp_path, task, classes, expected):
    spec = InputSpec(4, [], classes, task, [32] * classes if task != "regression" else [])
    model = SupervisedModel(net=TinyNet(spec.n_outputs), optimizer=ADAM, spec=spec)
    trainer = _trainer(tmp_path)
    trainer.fit(model, train_dataloaders=_batches(task), val_dataloaders=_batches(task))
    assert expected <= set(trainer.callback_metrics)
    assert "train/loss_epoch" in trainer.callback_metrics


def test_binary_model_learns_a_separable_problem(tmp_path):
    spec = InputSpec(4, [], 2, "binary", [32, 32])
    model = SupervisedModel(net=TinyNet(1), optimizer={**ADAM, "lr": 0.1}, spec=spec)
    trainer = _trainer(tmp_path, max_epochs=20)
    trainer.fit(model, train_dataloaders=_batches("binary"), val_dataloaders=_batches("binary"))
    assert trainer.callback_metrics["val/accuracy"] > 0.9


def test_pos_weight_derived_from_class_counts_unless_set():
    spec = InputSpec(4, [], 2, "binary", [95, 5])
    assert SupervisedModel(net=TinyNet(1), optimizer=ADAM, spec=spec).loss_fn.pos_weight.item() == pytest.approx(19 ** 0.5)
    assert SupervisedModel(net=TinyNet(1), optimizer=ADAM, spec=spec, pos_weight=2.0).loss_fn.pos_weight.item() == 2.0


def test_checkpoint_loads_without_passing_the_network(tmp_path):
    spec = InputSpec(3, [5, 7], 2, "binary", [10, 10])
    net_config = {"_target_": "factory.models.TabularMLP", "hidden_dims": [8], "dropout": 0.0}
    model = SupervisedModel(net=net_config, optimizer=ADAM, spec=spec.to_dict())
    trainer = _trainer(tmp_path, max_epochs=1)
    x_num, x_cat = torch.randn(8, 3), torch.randint(0, 5, (8, 2))
    trainer.fit(model, train_dataloaders=DataLoader([(x_num, x_cat, torch.tensor([0, 1] * 4))], batch_size=None))
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    loaded = SupervisedModel.load_from_checkpoint(path).eval()
    assert isinstance(loaded.net, TabularMLP)
    torch.testing.assert_close(loaded(x_num, x_cat), model.eval()(x_num, x_cat))


def test_cnn_takes_images():
    spec = InputSpec(64, [], 10, "multiclass", [1] * 10, [1, 8, 8])
    net = SmallCNN(spec, channels=[4, 8])
    assert net(torch.randn(2, 1, 8, 8), torch.zeros(2, 0, dtype=torch.long)).shape == (2, 10)


def test_cnn_refuses_non_image_data():
    with pytest.raises(ValueError, match="image-shaped"):
        SmallCNN(InputSpec(4, [], 2, "binary"))


def test_bad_optimizer_kwarg_names_the_key():
    spec = InputSpec(4, [], 2, "binary", [1, 1])
    model = SupervisedModel(net=TinyNet(1), optimizer={**ADAM, "lrr": 0.1}, spec=spec)
    with pytest.raises(ConfigError, match=r"^model.optimizer: .*lrr"):
        model.configure_optimizers()


def test_mlp_embeds_high_cardinality_categoricals():
    spec = InputSpec(3, [50, 4], 2, "binary")
    net = TabularMLP(spec, hidden_dims=[8], embed_dim=5)
    assert [e.num_embeddings for e in net.embeddings] == [50, 4]
    assert net.layers[0].in_features == 3 + 2 * 5


def test_epoch_line_shows_each_epochs_mean_train_loss(tmp_path, caplog):
    from factory.training.callbacks import EpochSummary

    spec = InputSpec(4, [], 2, "binary", [32, 32])
    model = SupervisedModel(net=TinyNet(1), optimizer={**ADAM, "lr": 0.1}, spec=spec)
    trainer = _trainer(tmp_path, callbacks=[EpochSummary()], log_every_n_steps=50)  # no step value logged
    with caplog.at_level("INFO"):
        trainer.fit(model, train_dataloaders=_batches("binary"), val_dataloaders=_batches("binary"))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    losses = [float(line.split("train/loss ")[1].split()[0]) for line in lines]
    assert len(losses) == 3 and losses[0] > losses[-1]  # the epoch's own mean, falling as it learns
    assert losses[-1] == pytest.approx(float(trainer.callback_metrics["train/loss_epoch"]), abs=1e-4)
