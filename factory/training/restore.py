"""Reading factory's own checkpoints back: the file's contents, and its DataModule restored.

Here, not in ``factory.rundir.checkpoints``: restoring builds data components, and the run
directory's package sits below config and data (it finds checkpoints, it does not open them).
Callers: evaluation (``training.recipe.evaluate``), ``factory.registry.loading`` and
``factory.analysis.predictions``.
"""
from __future__ import annotations

from pathlib import Path

from factory.errors import ConfigError


def load_factory_checkpoint(path: str | Path) -> dict:
    """``torch.load`` a checkpoint file written by factory's training.

    Raises:
        ConfigError: the file is unreadable, or lacks the model config or the preprocessing.
    """
    import torch

    from factory.data.checkpoint_state import datamodule_state

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001: torch raises many types for a non-checkpoint
        raise ConfigError(f"ckpt_path: {path} is not a readable checkpoint ({type(e).__name__})") from e
    if "hyper_parameters" not in checkpoint or datamodule_state(checkpoint) is None:
        raise ConfigError(f"ckpt_path: {path} was not written by factory's training")
    return checkpoint


def restore_datamodule(data_cfg, checkpoint: dict):
    """Build ``data_cfg``'s DataModule with the preprocessing fitted at training time; set up for test."""
    from factory.config.instantiate import build
    from factory.data.checkpoint_state import datamodule_state

    datamodule = build(data_cfg, "data")  # in-memory or streamed (data=files_stream): either reads the state
    datamodule.load_state_dict(datamodule_state(checkpoint))
    datamodule.setup("test")
    return datamodule
