"""Checkpoints written once: ``last.ckpt`` becomes a hard link to the checkpoint just written.

Lightning's ``ModelCheckpoint(save_last=True)`` writes ``last.ckpt`` "whenever a checkpoint
file gets saved": at every epoch end that improves the monitored metric it serializes the
same state twice, ``best.ckpt`` then ``last.ckpt``. ``RunCheckpoint`` writes ``best.ckpt``
and links ``last.ckpt`` to it: the same bytes (the state ``best.ckpt`` records already names
``last.ckpt``), half the writes. Both names stay regular files, so resume, the registry and
reports read them as before.

A hard link shares one file under two names, so no checkpoint may be written into a name
that shares its file. Lightning writes a checkpoint to a temporary file and moves it over
the name: a rename, which leaves the other name's file as it was, but across filesystems a
copy into the existing file. So every writer of ``best.ckpt`` or ``last.ckpt`` first calls
``unshare``, which removes a shared name (``RunCheckpoint`` and
``fault_tolerance.PreemptionCheckpoint``). A link is made under a temporary name and renamed
over ``last.ckpt``: a kill at any point leaves a whole ``last.ckpt``. Sharded checkpoints
(DeepSpeed ZeRO directories) are written twice, as by Lightning.
"""
from __future__ import annotations

import os
import shutil
from typing import Any
from weakref import proxy

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint


def unshare(trainer: pl.Trainer, path: str | os.PathLike) -> None:
    """Remove ``path`` if it is a file linked under another name, before a checkpoint is written to it.

    Rank 0 only: it is the rank that writes a one-file checkpoint.
    """
    if trainer.is_global_zero and os.path.isfile(path) and os.stat(path).st_nlink > 1:
        os.unlink(path)


def link(source: str, target: str) -> None:
    """``target`` becomes another name of the file ``source`` (a copy where links are not supported)."""
    staged = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.link")
    if os.path.lexists(staged):
        os.unlink(staged)
    try:
        os.link(source, staged)
    except OSError:  # a filesystem without hard links
        shutil.copyfile(source, staged)
    os.replace(staged, target)  # atomic: readers see the old last.ckpt or the new one, never none


class RunCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that writes each checkpoint once: ``last.ckpt`` links to it.

    Takes ``ModelCheckpoint``'s arguments (``conf/callbacks/default.yaml``).
    """

    # Class defaults, not an __init__: the signature stays ModelCheckpoint's (config checks read it).
    _written: str | None = None  # the file a top-k save just wrote, for last.ckpt to link to
    _writes = 0  # checkpoints written
    _key: tuple | None = None  # (the inputs of state_key, state_key)

    @property
    def state_key(self) -> str:
        # ModelCheckpoint's key, so checkpoints written by either class resume under the other.
        # Lightning formats it at every callback hook call (~8 a step): formatted once per inputs.
        inputs = (self.monitor, self.mode, self._every_n_train_steps, self._every_n_epochs, self._train_time_interval)
        if self._key is None or self._key[0] != inputs:
            self._key = inputs, super().state_key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)
        return self._key[1]

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any,
                           **kwargs: Any) -> None:
        # Without a step or time interval Lightning's hook returns without saving, but only after
        # checking the trainer's state: ~25 us on every step.
        if self._every_n_train_steps >= 1 or self._train_time_interval is not None:
            super().on_train_batch_end(trainer, pl_module, *args, **kwargs)

    def _save_topk_checkpoint(self, trainer: pl.Trainer, monitor_candidates: dict) -> None:
        self._written = None
        if not self._links_last():
            return super()._save_topk_checkpoint(trainer, monitor_candidates)
        # last.ckpt will be this file: the state it records must name last.ckpt as Lightning's
        # second write would (it sets last_model_path before saving; nothing else differs).
        previous = self.last_model_path
        self.last_model_path = self.format_checkpoint_name(monitor_candidates, self.CHECKPOINT_NAME_LAST)
        writes = self._writes
        super()._save_topk_checkpoint(trainer, monitor_candidates)
        if self._writes == writes:  # not among the best: last.ckpt is not written either
            self.last_model_path = previous
        else:
            self._written = self._last_checkpoint_saved

    def _save_last_checkpoint(self, trainer: pl.Trainer, monitor_candidates: dict) -> None:
        try:
            super()._save_last_checkpoint(trainer, monitor_candidates)
        finally:
            self._written = None

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        written, self._written = self._written, None
        # Every rank takes the same branch: rank 0 tells whether the checkpoint is one file.
        if written and written != filepath and trainer.strategy.broadcast(os.path.isfile(written)):
            if trainer.is_global_zero:
                link(written, filepath)
            trainer.strategy.barrier("RunCheckpoint.link")
        else:
            unshare(trainer, filepath)
            trainer.save_checkpoint(filepath, self.save_weights_only)
        # As ModelCheckpoint._save_checkpoint, after the write:
        self._writes += 1
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(proxy(self))

    def _links_last(self) -> bool:
        # With the version counter, last.ckpt's name is known only when it is written.
        return self.save_last is True and not self._enable_version_counter and self.save_top_k != 0
