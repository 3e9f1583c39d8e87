"""Checkpoints as files (single, DDP) or sharded directories (DeepSpeed ZeRO), and moving between them."""
from __future__ import annotations

import hashlib
import logging
import os
import zipfile
from pathlib import Path

from factory.console import printed_to_log
from factory.errors import ConfigError
from factory.rundir import layout
from factory.rundir.layout import FP32_SUFFIX

log = logging.getLogger(__name__)

#: DeepSpeed's pointer to the tag directory holding the shards; every ZeRO checkpoint has one.
LATEST = "latest"
CACHE_ENV = "FACTORY_CACHE_DIR"


def is_sharded(path: str | Path) -> bool:
    """A DeepSpeed checkpoint is a directory of per-rank shards; everything else is one file."""
    return Path(path).is_dir()


def checkpoint_format(path: str | Path | None) -> str | None:
    if path is None:
        return None
    return "sharded" if is_sharded(path) else "file"


def export_path(sharded: str | Path) -> Path:
    """Where ``scripts/export.py`` writes by default: ``best.ckpt/`` -> ``best-fp32.ckpt`` beside it."""
    sharded = Path(sharded)
    return sharded.with_name(sharded.name.removesuffix(".ckpt") + FP32_SUFFIX)


def cache_dir() -> Path:
    """factory's cache: ``$FACTORY_CACHE_DIR``, else ``$XDG_CACHE_HOME/factory``, else ``~/.cache/factory``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "factory"


def consolidated_path(sharded: str | Path) -> Path:
    """Where reads keep the one-file form of a ZeRO directory: in the cache, never in the run.

    Reading a run (evaluate, predictions, ``load_model``) must not change its directory,
    so the consolidation goes to ``cache_dir()/consolidated/<dir key>/<shards key>.ckpt``:
    the directory key names the checkpoint directory, the shards key its files' names,
    sizes and modification times, so a checkpoint rewritten in place (a resumed run's
    ``last.ckpt``) is consolidated afresh instead of served stale.
    """
    sharded = Path(sharded).resolve()
    stats = hashlib.sha256()
    for file in sorted(p for p in sharded.rglob("*") if p.is_file()):
        st = file.stat()
        stats.update(f"{file.relative_to(sharded)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    where = hashlib.sha256(str(sharded).encode()).hexdigest()[:16]
    return cache_dir() / "consolidated" / where / f"{sharded.name.removesuffix('.ckpt')}-{stats.hexdigest()[:16]}.ckpt"


def is_newer_than_shards(output: str | Path, sharded: str | Path) -> bool:
    """Whether the file ``output`` was written after every file of the ZeRO directory ``sharded``."""
    output = Path(output)
    if not output.is_file():
        return False
    newest = max((p.stat().st_mtime_ns for p in Path(sharded).rglob("*") if p.is_file()), default=0)
    return output.stat().st_mtime_ns >= newest


def check_shards(sharded: str | Path) -> None:
    """Check a ZeRO directory is whole before DeepSpeed reads it, naming the first bad file.

    Every shard is a zip archive (``torch.save``); a truncated or overwritten one lacks the
    archive's directory, which ``zipfile`` finds from the file's end without reading it all.

    Raises:
        ConfigError: no ``latest`` file or tag directory, no shards, or a damaged shard.
    """
    sharded = Path(sharded)
    latest = sharded / LATEST
    if not latest.is_file():
        raise ConfigError(f"ckpt_path: {sharded} is a directory but not a DeepSpeed checkpoint (it has no "
                          f"'{LATEST}' file); pass a checkpoint file, a ZeRO checkpoint directory or a run directory")
    tag = sharded / latest.read_text().strip()
    shards = sorted(tag.glob("*.pt")) if tag.is_dir() else []
    if not shards:
        raise ConfigError(f"ckpt_path: {sharded} is not a complete DeepSpeed checkpoint: {tag} holds no shards")
    for shard in shards:
        if not zipfile.is_zipfile(shard):
            raise ConfigError(f"ckpt_path: shard {shard} is damaged (truncated or not a torch file); "
                              "the checkpoint cannot be read")


def consolidate(sharded: str | Path, output: str | Path | None = None) -> Path:
    """Merge a ZeRO checkpoint directory into one fp32 checkpoint file.

    The file holds the full state dict plus Lightning's state (hyperparameters, the fitted
    preprocessing), so ``SupervisedModel.load_from_checkpoint`` reads it without DeepSpeed.

    Args:
        sharded: the ZeRO directory (``checkpoints/best.ckpt/``).
        output: the file to write; default ``export_path(sharded)``, beside the directory.

    Raises:
        ConfigError: ``sharded`` does not exist, is not a DeepSpeed checkpoint directory,
            or holds a damaged shard (named).
    """
    sharded = Path(sharded)
    if not sharded.exists():
        raise ConfigError(f"ckpt_path: no such checkpoint file: {sharded}")
    if not is_sharded(sharded):
        raise ConfigError(f"ckpt_path: {sharded} is a single-file checkpoint, not a sharded (DeepSpeed) "
                          "checkpoint directory: it needs no export")
    check_shards(sharded)
    output = Path(output) if output else export_path(sharded)
    from pytorch_lightning.utilities.deepspeed import convert_zero_checkpoint_to_fp32_state_dict

    output.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(output.parent, os.W_OK):
        raise ConfigError(f"cannot write {output}: {output.parent} is not writable")
    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")  # concurrent readers each write their own
    try:
        with printed_to_log(__name__):  # DeepSpeed's prints, tqdm bars and warnings: debug lines, not a notebook's
            convert_zero_checkpoint_to_fp32_state_dict(str(sharded), str(tmp))
    except Exception as e:  # noqa: BLE001: torch and DeepSpeed raise many types for a damaged directory
        tmp.unlink(missing_ok=True)
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ConfigError(f"ckpt_path: {sharded} is not a complete DeepSpeed checkpoint ({reason})") from e
    tmp.replace(output)
    return output


def as_file(path: str | Path) -> Path:
    """A checkpoint as one file: ``path`` itself, or a ZeRO directory's consolidation (cached).

    ``path`` may also be a run directory (its best checkpoint, else its last). Nothing is
    written beside the checkpoint: see ``consolidated_path``.

    Raises:
        ConfigError: no such path, or a directory that is neither a checkpoint nor a run.
    """
    path = resolve_checkpoint(path)
    if not is_sharded(path):
        return path
    target = consolidated_path(path)
    if target.is_file():
        return target
    check_shards(path)
    log.info("consolidating ZeRO checkpoint %s into %s (cached for later reads)", path, target)
    consolidate(path, target)
    for stale in target.parent.glob("*.ckpt"):  # earlier states of the same directory
        if stale != target:
            stale.unlink(missing_ok=True)
    return target


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint ``path`` names: itself, or for a run directory its best (else last) checkpoint.

    Raises:
        ConfigError: no such path; a run without checkpoints; another kind of directory.
    """
    from factory.rundir import manifest

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"ckpt_path: no such checkpoint file: {path}")
    if not path.is_dir() or (path / LATEST).is_file():
        return path
    if not (path / manifest.MANIFEST).is_file():
        raise ConfigError(f"ckpt_path: {path} is a directory but neither a DeepSpeed checkpoint (no '{LATEST}' "
                          f"file) nor a run directory (no {manifest.MANIFEST}); pass a checkpoint such as "
                          "<run>/checkpoints/best.ckpt, or the run directory")
    try:
        record = manifest.load_record(path)
    except (OSError, ValueError, TypeError) as e:
        raise ConfigError(f"ckpt_path: run {path} has an unreadable {manifest.MANIFEST} ({e})") from None
    found = judged_path(path, record)
    if found is not None:
        return found
    candidates = judged_candidates(path, record)
    if candidates:
        raise ConfigError(f"ckpt_path: run {path}: its checkpoint {candidates[0]} is missing; "
                          "pass another checkpoint file of the run")
    raise ConfigError(f"ckpt_path: run {path} has no checkpoint (status {record.status}); "
                      "pass a run that saved one, or a checkpoint file")


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
        candidates = [p for p in task_dir.glob(f"**/{layout.CHECKPOINTS}/{layout.LAST}")
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


def judged_candidates(run_dir: str | Path, record) -> list[Path]:
    """Where the checkpoint a run is judged by may lie; empty when the run recorded none.

    The rule, for every reader (evaluate, ``load_model``, predictions, the registry, the
    trackers): the best checkpoint if the run recorded one, else its last. A recorded best
    that is gone is not replaced by the last: that would judge, register or publish another
    model under the best one's metrics. The path is looked for first inside ``run_dir``
    (``run.json`` keeps the path the run was written at, and the directory may have been
    moved or copied since), then where it was written.

    Args:
        run_dir: the run directory as it is now.
        record: its ``RunRecord`` (``best_checkpoint``, ``last_checkpoint``, ``run_dir``).
    """
    recorded = record.best_checkpoint or record.last_checkpoint
    if not recorded:
        return []
    recorded, run_dir, written_in = Path(recorded), Path(run_dir), Path(record.run_dir)
    if written_in in recorded.parents:
        return list(dict.fromkeys([run_dir / recorded.relative_to(written_in), recorded]))
    return [recorded]


def judged_path(run_dir: str | Path, record) -> Path | None:
    """The first of ``judged_candidates`` that exists (a file, or a ZeRO directory); ``None`` if none does."""
    return next((p for p in judged_candidates(run_dir, record) if p.exists()), None)


def judged_checkpoint(run_dir: str | Path, best: str | Path | None) -> Path:
    """The checkpoint a run is judged by (best, else last), as one file (ZeRO shards consolidated).

    With its ``run.json``, the run directory's own checkpoints are used, also when it was
    moved or copied since; nothing is written into it (``as_file``).
    """
    if layout.is_run_dir(run_dir):
        return as_file(run_dir)  # resolve_checkpoint: judged_path
    return as_file(best or layout.last_checkpoint(run_dir))

