"""Checkpoints as files (single, DDP) or sharded directories (DeepSpeed ZeRO), and moving between them."""
from __future__ import annotations

from pathlib import Path

from factory.errors import ConfigError

FP32_SUFFIX = "-fp32.ckpt"


def is_sharded(path: str | Path) -> bool:
    """A DeepSpeed checkpoint is a directory of per-rank shards; everything else is one file."""
    return Path(path).is_dir()


def checkpoint_format(path: str | Path | None) -> str | None:
    if path is None:
        return None
    return "sharded" if is_sharded(path) else "file"


def consolidated_path(sharded: str | Path) -> Path:
    """Where ``consolidate`` writes by default: ``best.ckpt/`` -> ``best-fp32.ckpt`` beside it."""
    sharded = Path(sharded)
    return sharded.with_name(sharded.name.removesuffix(".ckpt") + FP32_SUFFIX)


def consolidate(sharded: str | Path, output: str | Path | None = None) -> Path:
    """Merge a ZeRO checkpoint directory into one fp32 checkpoint file.

    The file holds the full state dict plus Lightning's state (hyperparameters, the fitted
    preprocessing), so ``SupervisedModel.load_from_checkpoint`` reads it without DeepSpeed.

    Raises:
        ConfigError: ``sharded`` is not a DeepSpeed checkpoint directory.
    """
    sharded = Path(sharded)
    if not is_sharded(sharded):
        raise ConfigError(f"ckpt_path: {sharded} is not a sharded (DeepSpeed) checkpoint directory")
    output = Path(output) if output else consolidated_path(sharded)
    from pytorch_lightning.utilities.deepspeed import convert_zero_checkpoint_to_fp32_state_dict

    tmp = output.with_name(f".{output.name}.tmp")
    try:
        convert_zero_checkpoint_to_fp32_state_dict(str(sharded), str(tmp))
    except (FileNotFoundError, ValueError, KeyError, IndexError) as e:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"ckpt_path: {sharded} is not a complete DeepSpeed checkpoint ({e})") from e
    tmp.replace(output)
    return output


def as_file(path: str | Path) -> Path:
    """``path`` itself if it is a file checkpoint; its consolidated file (made if needed) otherwise."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"ckpt_path: no such checkpoint file: {path}")
    if not is_sharded(path):
        return path
    target = consolidated_path(path)
    return target if target.is_file() else consolidate(path, target)


def resolve_resume(ckpt_path: str | None, task_dir: Path, run_dir: Path | None = None) -> str | None:
    """``ckpt_path`` as given, or for ``last`` the newest ``last.ckpt`` among this task's runs.

    ``last`` looks through every run under ``task_dir`` (sweep runs included) except
    ``run_dir`` itself, and takes the most recently written one.

    Raises:
        ConfigError: the path does not exist, or ``last`` finds no earlier run to resume.
    """
    if ckpt_path is None:
        return None
    if ckpt_path == "last":
        candidates = [p for p in task_dir.glob("**/checkpoints/last.ckpt")
                      if run_dir is None or run_dir not in p.parents]
        if not candidates:
            raise ConfigError(f"ckpt_path=last: no run under {task_dir} has checkpoints/last.ckpt to resume")
        return str(max(candidates, key=lambda p: p.stat().st_mtime))
    if not Path(ckpt_path).exists():
        raise ConfigError(f"ckpt_path: no such checkpoint: {ckpt_path}")
    return str(Path(ckpt_path).resolve())


def check_resume_format(ckpt_path: str | None, sharded_strategy: bool) -> None:
    """A sharded checkpoint resumes only under DeepSpeed, a file only under the other strategies."""
    if ckpt_path is None:
        return
    if is_sharded(ckpt_path) and not sharded_strategy:
        raise ConfigError(f"ckpt_path: {ckpt_path} is a sharded DeepSpeed checkpoint: resume it with the "
                          "DeepSpeed strategy that wrote it, or start from its weights after scripts/export.py")
    if not is_sharded(ckpt_path) and sharded_strategy:
        raise ConfigError(f"ckpt_path: {ckpt_path} is a single-file checkpoint; a DeepSpeed strategy resumes "
                          "only the sharded directories it writes")


def judged_checkpoint(run_dir: str | Path, best: str | Path | None) -> Path:
    """The checkpoint a run is judged by (best, else last), as one file (ZeRO shards consolidated)."""
    return as_file(best or Path(run_dir) / "checkpoints" / "last.ckpt")


def load_factory_checkpoint(path: str | Path) -> dict:
    """``torch.load`` a checkpoint file written by factory's training.

    Raises:
        ConfigError: the file is unreadable, or lacks the model config or the preprocessing.
    """
    import torch

    from factory.data.datamodule import TabularDataModule

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001: torch raises many types for a non-checkpoint
        raise ConfigError(f"ckpt_path: {path} is not a readable checkpoint ({type(e).__name__})") from e
    if "hyper_parameters" not in checkpoint or TabularDataModule.__qualname__ not in checkpoint:
        raise ConfigError(f"ckpt_path: {path} was not written by factory's training")
    return checkpoint


def restore_datamodule(data_cfg, checkpoint: dict):
    """Build ``data_cfg``'s DataModule with the preprocessing fitted at training time; set up for test."""
    from factory.components import build
    from factory.data.datamodule import TabularDataModule

    datamodule = build(data_cfg, "data")
    datamodule.load_state_dict(checkpoint[TabularDataModule.__qualname__])
    datamodule.setup("test")
    return datamodule
