"""TabM: member shapes, members that differ, mean-of-members predictions, training and checkpoints."""
from __future__ import annotations

import pytorch_lightning as pl
import pytest
import torch
from torch.utils.data import DataLoader

from factory.data.spec import InputSpec
from factory.models import SupervisedModel, TabM
from factory.models.module import ensemble_mean

ADAM = {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 0.01}
SPECS = {"binary": InputSpec(5, [7, 3], 2, "binary", [20, 20]),
         "multiclass": InputSpec(5, [7, 3], 4, "multiclass", [10] * 4),
         "regression": InputSpec(5, [7, 3], 1, "regression")}


def _inputs(n: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    return torch.randn(n, 5), torch.stack([torch.randint(0, 7, (n,)), torch.randint(0, 3, (n,))], dim=1)


@pytest.mark.parametrize("arch_type", ["tabm", "tabm-mini"])
@pytest.mark.parametrize("task, outputs", [("binary", 1), ("multiclass", 4), ("regression", 1)])
def test_one_prediction_per_member_and_one_after_the_module(task, outputs, arch_type):
    net = TabM(SPECS[task], k=4, d_block=16, arch_type=arch_type)
    x_num, x_cat = _inputs()
    assert net(x_num, x_cat).shape == (6, 4, outputs)
    model = SupervisedModel(net=net, optimizer=ADAM, spec=SPECS[task])
    assert model(x_num, x_cat).shape == (6, outputs)


def test_image_tables_are_read_as_pixel_columns():
    spec = InputSpec(64, [], 10, "multiclass", [1] * 10, [1, 8, 8])
    assert TabM(spec, k=2, d_block=8)(torch.randn(3, 1, 8, 8), torch.zeros(3, 0, dtype=torch.long)).shape == (3, 2, 10)


@pytest.mark.parametrize("arch_type", ["tabm", "tabm-mini"])
def test_members_start_different(arch_type):
    torch.manual_seed(0)
    net = TabM(SPECS["regression"], k=8, d_block=16, arch_type=arch_type).eval()
    members = net(*_inputs()).squeeze(-1)  # (6, 8)
    # no two members give the same predictions: not k copies of one MLP
    assert torch.cdist(members.T, members.T).add(torch.eye(8)).min() > 1e-3


def test_tabm_adapters_are_per_member_and_the_weights_shared():
    torch.manual_seed(0)
    net = TabM(SPECS["binary"], k=8, d_block=16, n_blocks=3)
    first, second = net.blocks[0][0], net.blocks[1][0]
    assert first.weight.shape == (16, 5 + 2 * 8) and first.r.shape == (8, 5 + 2 * 8)
    assert set(first.r.detach().abs().flatten().tolist()) == {1.0}  # random signs on the input
    assert len(torch.unique(first.r, dim=0)) > 1
    assert torch.equal(second.r, torch.ones(8, 16)) and torch.equal(second.s, torch.ones(8, 16))
    # an embedded categorical's 8 columns are scaled as one feature
    assert (first.r[:, 5:13] == first.r[:, 5:6]).all()


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_prediction_is_the_members_mean(task):
    """Probabilities (not logits) are averaged for classification, values for regression."""
    torch.manual_seed(0)
    members = 4.0 * torch.randn(6, 5, SPECS[task].n_outputs)  # (B, k, out), some saturated
    mean = ensemble_mean(task, members)
    if task == "binary":
        torch.testing.assert_close(torch.sigmoid(mean), torch.sigmoid(members).mean(dim=1))
    elif task == "multiclass":
        torch.testing.assert_close(torch.softmax(mean, dim=-1), torch.softmax(members, dim=-1).mean(dim=1))
    else:
        torch.testing.assert_close(mean, members.mean(dim=1))
    assert torch.isfinite(ensemble_mean(task, torch.full((2, 3, 1), 200.0))).all()


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_training_loss_is_the_mean_of_the_members_losses(task):
    model = SupervisedModel(net=TabM(SPECS[task], k=3, d_block=8), optimizer=ADAM, spec=SPECS[task])
    members = torch.randn(6, 3, SPECS[task].n_outputs)
    y = torch.tensor([0, 1, 1, 0, 1, 0]) if task != "regression" else torch.randn(6)
    per_member = [model._loss(members[:, i], y) for i in range(3)]
    torch.testing.assert_close(model._loss(members, y), torch.stack(per_member).mean())


def _separable(n: int = 128, batch: int = 32):
    torch.manual_seed(0)
    x = torch.randn(n, 5)
    y = (x[:, 0] + x[:, 1] > 0).long()
    x_cat = torch.zeros(n, 0, dtype=torch.long)
    return DataLoader([(x[i:i + batch], x_cat[i:i + batch], y[i:i + batch]) for i in range(0, n, batch)],
                      batch_size=None)


@pytest.mark.parametrize("num_embedding", ["none", "piecewise_linear"])
def test_tabm_learns_a_separable_table(tmp_path, num_embedding):
    edges = [[-2.0, -1.0, 0.0, 1.0, 2.0]] * 5
    spec = InputSpec(5, [], 2, "binary", [64, 64], n_continuous=5, bin_edges=edges)
    net = {"_target_": "factory.models.TabM", "k": 4, "d_block": 16, "dropout": 0.0, "num_embedding": num_embedding}
    model = SupervisedModel(net=net, optimizer=ADAM, spec=spec.to_dict())
    trainer = pl.Trainer(default_root_dir=tmp_path, max_epochs=15, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False)
    trainer.fit(model, train_dataloaders=_separable(), val_dataloaders=_separable())
    assert trainer.callback_metrics["val/accuracy"] > 0.9
    assert trainer.callback_metrics["val/loss"] < 0.3

    path = tmp_path / "tabm.ckpt"
    trainer.save_checkpoint(path)
    loaded = SupervisedModel.load_from_checkpoint(path).eval()
    assert isinstance(loaded.net, TabM) and loaded.net.k == 4
    x_num, _, _ = next(iter(_separable()))
    x_cat = torch.zeros(len(x_num), 0, dtype=torch.long)
    torch.testing.assert_close(loaded(x_num, x_cat), model.eval()(x_num, x_cat))


@pytest.mark.parametrize("kind", ["periodic", "piecewise_linear"])
def test_embedded_numerics_are_scaled_per_column(kind):
    spec = InputSpec(4, [], 2, "binary", [5, 5], n_continuous=2, bin_edges=[[-1.0, 0.0, 1.0], [-2.0, 2.0]])
    torch.manual_seed(0)
    net = TabM(spec, k=4, d_block=8, num_embedding=kind, num_embedding_dim=6)
    r = net.blocks[0][0].r  # (k, 2 * 6 + 2): two embedded columns, then two plain ones
    assert r.shape == (4, 14) and (r[:, :6] == r[:, :1]).all() and (r[:, 6:12] == r[:, 6:7]).all()
    assert set(r.detach().abs().flatten().tolist()) != {1.0}  # N(0, 1) after an embedding, not signs
    assert net(torch.randn(3, 4), torch.zeros(3, 0, dtype=torch.long)).shape == (3, 4, 1)


def test_bad_arch_type_names_the_key():
    with pytest.raises(ValueError, match=r"^model.net.arch_type: .*tabm-mini"):
        TabM(SPECS["binary"], arch_type="mini")


def test_builds_on_the_meta_device_for_the_planner():
    with torch.device("meta"):
        net = TabM(SPECS["multiclass"], k=4, d_block=16)
        assert net(*[t.to("meta") for t in _inputs()]).shape == (6, 4, 4)


def test_predictions_score_what_the_test_metrics_scored(tmp_path):
    """predict_split (factory.predict, a registered model) sees the same member mean as test."""
    from sklearn.metrics import roc_auc_score

    from factory.data.datamodule import TabularDataModule
    from factory.data.sources import SklearnSource
    from factory.models.predict import predict_split

    dm = TabularDataModule(SklearnSource("breast_cancer"), batch_size=64)
    dm.setup("fit")
    net = {"_target_": "factory.models.TabM", "k": 4, "d_block": 16}
    model = SupervisedModel(net=net, optimizer=ADAM, spec=dm.input_spec.to_dict())
    trainer = pl.Trainer(default_root_dir=tmp_path, max_epochs=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False)
    trainer.fit(model, datamodule=dm)
    tested = trainer.test(model, datamodule=dm, verbose=False)[0]
    frame = predict_split(model, dm, "test")
    assert roc_auc_score(frame["target"], frame["score"]) == pytest.approx(tested["test/auroc"], abs=1e-6)
    assert ((frame["score"] > 0.5) == frame["prediction"].astype(bool)).all()
