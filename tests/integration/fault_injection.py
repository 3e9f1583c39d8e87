"""A callback that kills its own training run at an exact point, for resume tests.

Configured in both the killed and the resumed launch (so their configs match, as
``resume=auto`` requires), it acts only when ``FAULT_INJECT`` is set, e.g.
``SIGKILL@epoch1`` (once epoch 1 ended and its checkpoints were written) or
``SIGTERM@step5`` (as training step 5 starts). SIGKILL goes to the whole process group,
as when a node dies, and SIGINT too, as a terminal's Ctrl-C does (tests start training
with ``start_new_session=True`` so that group is the run's own); other signals go to
rank 0's process only, as Kubernetes signals a container's main process, so rank 0 must
pass them on to the ranks it started.
"""
from __future__ import annotations

import os
import signal

import pytorch_lightning as pl

ENV = "FAULT_INJECT"


class KillAt(pl.Callback):
    """Send the signal named in ``$FAULT_INJECT`` at the named point (rank 0 only)."""

    def __init__(self) -> None:
        spec = os.environ.get(ENV)
        self.signum, self.point = None, None
        if spec:
            name, point = spec.split("@")
            self.signum = signal.Signals[name]
            self.point = point

    def _fire(self) -> None:
        self.point = None
        if self.signum in (signal.SIGKILL, signal.SIGINT):
            os.killpg(os.getpgid(0), self.signum)
        elif self.signum is not None:
            os.kill(os.getpid(), self.signum)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.point == f"step{trainer.global_step}" and trainer.is_global_zero:
            self._fire()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        # "epochN": once epoch N has ended and ModelCheckpoint has written its best/last.
        if self.point == f"epoch{trainer.current_epoch - 1}" and trainer.is_global_zero:
            self._fire()
