"""A run's model scored on one split of its data: raw rows beside target, prediction and scores.

The data is rebuilt from the run's ``config.yaml`` and encoded with the preprocessing
saved in its checkpoint (as ``factory.training.recipe.evaluate`` does), so the rows and their
encoding are the ones the model was trained and tested with, not a refit.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig

from factory.models.predict import predict_split


def run_predictions(run_dir: Path, config: DictConfig, best: str | None, fingerprint: str | None,
                    split: str = "test", model=None) -> pd.DataFrame:
    """``predict_split`` for a finished run; warns when its data no longer matches the run's."""
    from factory.rundir.checkpoints import judged_checkpoint
    from factory.training.restore import load_factory_checkpoint, restore_datamodule

    checkpoint = judged_checkpoint(run_dir, best)
    datamodule = restore_datamodule(config.data, load_factory_checkpoint(checkpoint))
    if fingerprint and datamodule.fingerprint != fingerprint:
        warnings.warn(f"the data of {Path(run_dir).name} changed since it ran (fingerprint "
                      f"{fingerprint[:12]} then, {datamodule.fingerprint[:12]} now): "
                      "predictions are on today's rows", stacklevel=3)
    if model is None:
        from factory.models import SupervisedModel

        model = SupervisedModel.load_from_checkpoint(checkpoint, map_location="cpu")
    return predict_split(model, datamodule, split)
