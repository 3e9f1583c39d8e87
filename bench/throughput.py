"""Training throughput: each workload trained three ways, back to back.

- *factory*: built as ``factory.training.recipe.run`` builds it (model, Trainer, loggers, callbacks);
- *lightning*: the same LightningModule under a bare ``Trainer.fit`` (no logger, checkpoint,
  callbacks, model summary or progress bar): what Lightning's own loop costs, the ceiling
  for anything built on it;
- *hand*: a plain PyTorch loop over the same tensors.

Workloads (``WORKLOADS``): the ``fraud_detection`` experiment as it is (a small network: steps
of a few ms, so per-step and per-epoch costs show), and the same data through ``mlp_wide``,
whose steps are large (tens of ms): what factory costs where the model does the work.

Used by ``bench/overhead.py``; docs/benchmarks.md says what each number means.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
import warnings
from pathlib import Path

EXPERIMENT = ["experiment=fraud_detection", "logger=csv"]
LOOPS = ("factory", "lightning", "hand")
#: name -> (overrides after EXPERIMENT, epochs when --epochs is not given: None is the experiment's).
WORKLOADS = {"fraud_detection": ([], None),
             "mlp_wide": (["model=mlp_wide", "model.net.width=512"], 3)}


def compose_run(run_dir: Path, epochs: int | None, overrides: list[str]):
    """The experiment's config with validation off and a fixed run directory."""
    from factory.config import compose

    return compose("train", [*EXPERIMENT, "trainer.limit_val_batches=0", "trainer.enable_progress_bar=false",
                             "monitor.metric=train/loss_epoch", "monitor.mode=min", f"paths.run_dir={run_dir}",
                             *([f"trainer.max_epochs={epochs}"] if epochs else []), *overrides])


def fit_factory(cfg, datamodule) -> tuple[int, float]:
    """Train as ``factory.training.recipe.run`` does; returns (samples, seconds of ``trainer.fit``)."""
    import pytorch_lightning as pl

    from factory.config.instantiate import build
    from factory.training.components import build_trainer

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    model = build(cfg.model, "model", spec=datamodule.input_spec.to_dict())
    trainer = build_trainer(cfg, Path(cfg.paths.run_dir))
    start = time.perf_counter()
    trainer.fit(model, datamodule=datamodule)
    return trainer.global_step * cfg.data.batch_size, time.perf_counter() - start


def fit_lightning(cfg, datamodule) -> tuple[int, float]:
    """The same LightningModule under a bare ``Trainer.fit``: Lightning's loop and nothing else."""
    import pytorch_lightning as pl

    from factory.config.instantiate import build

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    model = build(cfg.model, "model", spec=datamodule.input_spec.to_dict())
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=cfg.trainer.max_epochs, logger=False,
                         callbacks=[], enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0)
    start = time.perf_counter()
    trainer.fit(model, datamodule=datamodule)
    return trainer.global_step * cfg.data.batch_size, time.perf_counter() - start


def fit_by_hand(cfg, datamodule) -> tuple[int, float]:
    """A plain PyTorch loop: same network, optimizer, scheduler, loss and tensors."""
    import torch
    from hydra.utils import instantiate

    from factory.models.metrics import task_loss

    torch.manual_seed(cfg.seed)
    spec = datamodule.input_spec
    net = instantiate(cfg.model.net, _partial_=True, _convert_="all")(spec).train()
    optimizer = instantiate(cfg.model.optimizer)(net.parameters())
    scheduler = instantiate(cfg.model.scheduler)(optimizer) if cfg.model.get("scheduler") else None
    pos_weight = cfg.model.get("pos_weight")  # as SupervisedModel: null -> negatives / positives
    if pos_weight is None and spec.task == "binary" and len(spec.class_counts) == 2:
        pos_weight = spec.class_counts[0] / max(spec.class_counts[1], 1)
    loss_fn = task_loss(spec.task, pos_weight)
    x_num, x_cat, y = datamodule.train_dataloader().dataset.tensors  # preloaded, (N, F), (N, E), (N,)
    size, steps = cfg.data.batch_size, len(y) // cfg.data.batch_size  # drop_last, as factory
    total = torch.zeros(())
    start = time.perf_counter()
    for _ in range(cfg.trainer.max_epochs):
        order = torch.randperm(len(y))
        for i in range(steps):
            rows = order[i * size:(i + 1) * size]
            loss = loss_fn(net(x_num[rows], x_cat[rows]).squeeze(-1), y[rows].float())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach()
        if scheduler is not None:
            scheduler.step()  # per epoch, as factory configures it
    return cfg.trainer.max_epochs * steps * size, time.perf_counter() - start


def throughput(args: argparse.Namespace) -> list[dict]:
    """One result per workload in ``args.workloads`` (default: all), measured one after the other."""
    import importlib
    import logging

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    importlib.import_module("pytorch_lightning")  # it sets its loggers' levels on import: ours go after
    for name in ("pytorch_lightning", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)  # epoch lines, device and tip messages
    return [workload(name, args) for name in (getattr(args, "workloads", None) or WORKLOADS)]


def workload(name: str, args: argparse.Namespace) -> dict:
    """Median samples/s of each loop over alternating repeats, and the medians of per-repeat ratios."""
    import torch

    from factory.config.instantiate import build

    overrides, default_epochs = WORKLOADS[name]
    overrides, epochs = [*overrides, *args.override], args.epochs or default_epochs
    rates: dict[str, list[float]] = {loop: [] for loop in LOOPS}  # samples/s, one per repeat
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), \
            contextlib.redirect_stdout(io.StringIO()):  # Lightning prints its model summary
        warnings.simplefilter("ignore")
        cfg = compose_run(Path(tmp) / "data", epochs, overrides)
        datamodule = build(cfg.data, "data")
        datamodule.setup("fit")  # once: data preparation is not training throughput
        loops = {"factory": fit_factory, "lightning": fit_lightning, "hand": fit_by_hand}
        for repeat in range(args.repeats + 1):  # repeat 0 warms them up
            for loop in (LOOPS if repeat % 2 else LOOPS[::-1]):
                run_cfg = compose_run(Path(tmp) / f"{loop}-{repeat}", epochs, overrides)
                samples, seconds = loops[loop](run_cfg, datamodule)
                if repeat:
                    rates[loop].append(samples / seconds)

    def ratio(a: str, b: str) -> float:  # median of per-repeat ratios: each repeat ran back to back
        return statistics.median(x / y for x, y in zip(rates[a], rates[b]))

    return {"workload": name, **{loop: statistics.median(rates[loop]) for loop in LOOPS},
            "ratio": ratio("factory", "hand"), "lightning_ratio": ratio("lightning", "hand"),
            "factory_vs_lightning": ratio("factory", "lightning"), "epochs": cfg.trainer.max_epochs,
            "batch_size": cfg.data.batch_size, "threads": torch.get_num_threads(), "overrides": args.override,
            "step_ms": 1000 * cfg.data.batch_size / statistics.median(rates["hand"]),  # the hand loop's
            "range": {k: (min(v), max(v)) for k, v in rates.items()}}
