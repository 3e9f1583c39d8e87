"""The LightningModule for supervised tasks: loss, metrics, optimizers around a network."""
from __future__ import annotations

import math
from typing import Any, Mapping

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torchmetrics import MeanMetric

from factory.data.spec import InputSpec
from factory.errors import ConfigError
from factory.models.metrics import scores, task_loss, task_metrics

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (x_num, x_cat, y)


class SupervisedModel(pl.LightningModule):
    """Binary, multiclass or regression training around an injected or configured network.

    The network maps ``(x_num, x_cat)`` to ``(B, n_outputs)`` logits, or to ``(B, k, n_outputs)``
    for an ensemble of k members (``TabM``): each member is trained on the whole batch (the
    loss is the mean of the members' losses), while ``forward`` (validation, test, predict)
    returns the logits of the members' mean prediction (``ensemble_mean``).

    Args:
        net: an ``nn.Module``, or a config (``_target_`` + kwargs) built with ``spec`` as
            its first argument. A config is stored in the hyperparameters, so
            ``SupervisedModel.load_from_checkpoint(path)`` needs nothing else.
        optimizer: a partial optimizer config (``_partial_: true``), called with the
            parameters.
        scheduler: a partial LR scheduler config called with the optimizer, or ``None``.
        pos_weight: binary only: weight of the positive class in the loss; ``None``
            derives sqrt(negatives/positives) from ``spec.class_counts``.
        spec: the inputs, from ``TabularDataModule.input_spec`` (a dict after loading).

    Example:
        >>> model = SupervisedModel(net=nn.Linear(4, 1), optimizer={"_target_": "torch.optim.SGD",
        ...     "_partial_": True, "lr": 0.1}, spec=InputSpec(4, [], 2, "binary", [5, 5]))
    """

    def __init__(self, net: nn.Module | Mapping, optimizer: Mapping, scheduler: Mapping | None = None,
                 pos_weight: float | None = None, spec: InputSpec | Mapping | None = None) -> None:
        super().__init__()
        if spec is None:
            raise ValueError("SupervisedModel needs spec= (TabularDataModule.input_spec)")
        # Hydra hands kwargs over as DictConfig; checkpoints must hold plain Python only. The
        # arguments are rebound plain too: Lightning's save_hyperparameters compares each one with
        # the saved dict, and a DictConfig compared with a dict builds OmegaConf nodes of all of it
        # (seconds, with a spec's fitted bin edges).
        net, optimizer, scheduler = (v if isinstance(v, nn.Module) else _plain(v) for v in (net, optimizer, scheduler))
        if isinstance(spec, Mapping) and spec.get("task") == "language_modeling":
            raise ConfigError("model: this model is for tables; text data (data=text) needs model=gpt")
        self.spec = InputSpec(**_plain(spec)) if isinstance(spec, Mapping) else spec
        self.net: nn.Module | None = None
        if isinstance(net, nn.Module):
            self.net = net
            self.save_hyperparameters(ignore=["net"])
        else:
            self.save_hyperparameters({"net": _plain(net)})  # built in configure_model
        self.save_hyperparameters({"optimizer": _plain(optimizer), "scheduler": _plain(scheduler),
                                   "pos_weight": pos_weight, "spec": self.spec.to_dict()})
        self.task = self.spec.task
        self.loss_fn = task_loss(self.task, self._pos_weight(pos_weight))
        # Keyed "<stage>_": a bare "train" would shadow nn.Module.train.
        self.losses = nn.ModuleDict({f"{stage}_": MeanMetric() for stage in ("train", "val", "test")})
        self.metrics = nn.ModuleDict({f"{stage}_": task_metrics(self.task, self.spec.n_classes)
                                      for stage in ("val", "test")})

    def _pos_weight(self, pos_weight: float | None) -> float | None:
        if self.task != "binary" or pos_weight is not None or len(self.spec.class_counts) != 2:
            return pos_weight
        # sqrt of the imbalance: the full ratio (~65 for 1.5% fraud) made val PR-AUC noisier
        # and lower across seeds; the square root did best (docs in conf/experiment/fraud_detection).
        negatives, positives = self.spec.class_counts
        return math.sqrt(negatives / max(positives, 1))

    def configure_model(self) -> None:
        """Build the configured network. Lightning calls this inside the strategy's sharding
        context, so under ZeRO-3 each process only ever holds its shard of the parameters."""
        if self.net is None:
            self.net = instantiate(self.hparams.net, _partial_=True, _convert_="all")(self.spec)

    def _net_outputs(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        """(B, n_outputs) logits, or (B, k, n_outputs) from an ensemble."""
        if self.net is None:  # used outside a Trainer, e.g. right after construction
            self.configure_model()
        return self.net(x_num, x_cat)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        """(B, n_outputs) logits: an ensemble's members averaged (``ensemble_mean``)."""
        return ensemble_mean(self.task, self._net_outputs(x_num, x_cat))

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if logits.dim() == 3:  # (B, k, out): every member on the whole batch, the mean of their losses
            y = y.repeat_interleave(logits.shape[1])
            logits = logits.flatten(0, 1)
        if self.task == "multiclass":
            return self.loss_fn(logits, y)
        return self.loss_fn(logits.squeeze(-1), y.float())

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        x_num, x_cat, y = batch
        loss = self._loss(self._net_outputs(x_num, x_cat), y)
        # A plain running sum: MeanMetric.update costs ~10x more per step; folded in once per epoch.
        self._train_loss_sum += loss.detach() * len(y)
        self._train_rows += len(y)
        # self.log on every step costs more than the step itself for small models, so log only
        # on the steps Lightning writes to the loggers ((step + 1) % n == 0, its grid): logged
        # anywhere else, the value waits in memory for the next write, which a resume loses.
        if (self.global_step + 1) % max(self.trainer.log_every_n_steps, 1) == 0:
            self.log("train/loss", loss.detach(), on_step=True, on_epoch=False, prog_bar=True)
        return loss

    def monitorable_metrics(self) -> list[str]:
        """What ``monitor.metric`` may name: the per-epoch values this model logs."""
        return ["val/loss", *(f"val/{name}" for name in self.metrics["val_"].keys()), "train/loss_epoch"]

    def running_train_loss(self) -> float | None:
        """Mean training loss of this epoch so far on this process (``None`` before a step)."""
        rows = getattr(self, "_train_rows", 0)
        return float(self._train_loss_sum) / rows if rows else None

    def on_train_epoch_start(self) -> None:
        self._train_loss_sum, self._train_rows = torch.zeros((), device=self.device), 0

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # A mid-epoch checkpoint (SIGTERM) resumes without on_train_epoch_start: keep the
        # epoch's running loss of every rank, so train/loss_epoch comes out as uninterrupted.
        from factory.distributed.ranks import gather_per_rank

        if hasattr(self, "_train_rows"):
            checkpoint["train_loss_running"] = gather_per_rank((float(self._train_loss_sum), self._train_rows))

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        from factory.distributed.ranks import own_state

        if "train_loss_running" in checkpoint:
            # A Python float: the first step's in-place add makes it a tensor on the loss's device.
            self._train_loss_sum, self._train_rows = own_state(checkpoint["train_loss_running"], self.global_rank)

    def on_train_epoch_end(self) -> None:
        if self._train_rows:
            self.losses["train_"].update(self._train_loss_sum / self._train_rows, weight=self._train_rows)
        self.log("train/loss_epoch", self.losses["train_"].compute(), sync_dist=True)
        self.losses["train_"].reset()

    def _evaluation_step(self, stage: str, batch: Batch) -> None:
        x_num, x_cat, y = batch
        logits = self(x_num, x_cat)
        self.losses[f"{stage}_"].update(self._loss(logits, y), weight=len(y))
        self.metrics[f"{stage}_"].update(scores(self.task, logits), y)

    def _evaluation_epoch_end(self, stage: str) -> None:
        # compute() synchronizes across processes once per epoch, not per step; sync_dist then
        # only averages values that are already equal on every rank.
        values = {f"{stage}/{name}": value for name, value in self.metrics[f"{stage}_"].compute().items()}
        values[f"{stage}/loss"] = self.losses[f"{stage}_"].compute()
        self.log_dict(values, prog_bar=stage == "val", sync_dist=True)
        self.metrics[f"{stage}_"].reset()
        self.losses[f"{stage}_"].reset()

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluation_step("val", batch)

    def on_validation_epoch_end(self) -> None:
        self._evaluation_epoch_end("val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluation_step("test", batch)

    def on_test_epoch_end(self) -> None:
        self._evaluation_epoch_end("test")

    def predict_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        x_num, x_cat, _ = batch
        return scores(self.task, self(x_num, x_cat))

    def configure_optimizers(self) -> Any:
        optimizer = _call(self.hparams.optimizer, "model.optimizer", self.parameters())
        if self.hparams.scheduler is None:
            return optimizer
        scheduler = _call(self.hparams.scheduler, "model.scheduler", optimizer)
        config = {"scheduler": scheduler, "interval": "epoch"}
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            config["monitor"] = "val/loss"
        return {"optimizer": optimizer, "lr_scheduler": config}


def ensemble_mean(task: str, logits: torch.Tensor) -> torch.Tensor:
    """(B, k, out) member logits -> (B, out) logits of the members' mean prediction; (B, out) as is.

    Classification averages probabilities, as the TabM paper does (averaged logits would
    be a different, more confident model): the result's sigmoid/softmax is the mean of the
    members'. Computed in log space, so saturated members stay finite.
    """
    if logits.dim() != 3:
        return logits
    if task == "binary":  # log(mean p) - log(mean (1 - p)): the logit of the mean probability
        return (torch.logsumexp(nn.functional.logsigmoid(logits), dim=1)
                - torch.logsumexp(nn.functional.logsigmoid(-logits), dim=1))
    if task == "multiclass":  # log of the mean class probabilities: softmax gives them back
        return torch.logsumexp(torch.log_softmax(logits, dim=-1), dim=1) - math.log(logits.shape[1])
    return logits.mean(dim=1)


def _plain(node: Any) -> Any:
    """DictConfig -> plain containers, so hyperparameters pickle and print cleanly."""
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def _call(partial_config: Mapping, key: str, argument: Any) -> Any:
    """Build a ``_partial_`` config and call it, naming the config key on bad kwargs."""
    try:
        return instantiate(partial_config)(argument)
    except Exception as e:  # noqa: BLE001: instantiate wraps everything it calls
        reason = str(e.__cause__ or e).strip().splitlines()[-1] if str(e.__cause__ or e).strip() else repr(e)
        raise ConfigError(f"{key}: {reason}") from e
