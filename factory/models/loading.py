"""``load_model``: a trained factory checkpoint back as its LightningModule, whichever kind it is."""
from __future__ import annotations

from pathlib import Path

from factory.errors import ConfigError


def load_model(checkpoint_path: str | Path, map_location: str = "cpu"):
    """The ``SupervisedModel`` or ``LanguageModel`` a checkpoint holds, in eval mode.

    The kind is the checkpoint's ``hyper_parameters["spec"]["task"]`` (``language_modeling``
    for a language model). ``checkpoint_path`` may be a file, a ZeRO checkpoint directory
    (its consolidation, cached) or a run directory (its best checkpoint, else its last).

    Raises:
        ConfigError: no such checkpoint, or not one factory's training wrote.
    """
    import torch

    from factory.rundir.checkpoints import as_file

    path = as_file(checkpoint_path)
    try:  # memory-mapped: only the hyperparameters are read here, not the weights
        checkpoint = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except RuntimeError:  # an old (non-zip) serialization cannot be mapped
        checkpoint = _read(path, torch)
    except Exception as e:  # noqa: BLE001: torch raises many types for a non-checkpoint
        raise ConfigError(f"ckpt_path: {path} is not a readable checkpoint ({type(e).__name__})") from e
    spec = (checkpoint.get("hyper_parameters") or {}).get("spec") if isinstance(checkpoint, dict) else None
    if not isinstance(spec, dict):
        raise ConfigError(f"ckpt_path: {path} was not written by factory's training (no hyper_parameters.spec)")
    del checkpoint
    if spec.get("task") == "language_modeling":
        from factory.models.language import LanguageModel as cls
    else:
        from factory.models.module import SupervisedModel as cls
    return cls.load_from_checkpoint(path, map_location=map_location, weights_only=False).eval()  # holds a tokenizer, not only tensors


def _read(path: Path, torch) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001
        raise ConfigError(f"ckpt_path: {path} is not a readable checkpoint ({type(e).__name__})") from e
