"""A Lightning callback timing training steps: tokens/s after a warm-up, for ``bench/llm.py``.

Injected into ``scripts/train.py`` runs as ``+callbacks.llmclock._target_=llm_clock.StepClock``
(``bench/`` on ``PYTHONPATH``); each rank writes ``$LLMCLOCK_DIR/rank<N>.json``. In process,
``bench/llm.py`` appends one to the Trainer's callbacks. The clock runs from the start of the
first step after ``warmup`` steps to the end of the last: the loop as it trains, without
start-up, validation or the checkpoint saved at the end.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from pytorch_lightning.callbacks import Callback


class StepClock(Callback):
    """Tokens per second of this rank's training steps after ``warmup`` of them.

    Args:
        warmup: steps left out (the first allocates, DeepSpeed builds buffers).
        out_dir: where to write ``rank<N>.json``; default ``$LLMCLOCK_DIR`` (None: keep in memory).
    """

    def __init__(self, warmup: int = 2, out_dir: str | None = None) -> None:
        self.warmup, self.steps, self.tokens = int(warmup), 0, 0
        self.out_dir = out_dir or os.environ.get("LLMCLOCK_DIR")
        self.began = self.ended = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if self.steps == self.warmup:
            self.began = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.steps += 1
        if self.began is not None:
            self.tokens += int(batch[0].numel())
            self.ended = time.perf_counter()

    @property
    def tokens_per_s(self) -> float | None:
        return self.tokens / (self.ended - self.began) if self.began and self.ended else None

    def on_train_end(self, trainer, pl_module) -> None:
        if self.out_dir:
            Path(self.out_dir).mkdir(parents=True, exist_ok=True)
            record = {"rank": trainer.global_rank, "tokens_per_s": self.tokens_per_s, "steps": self.steps,
                      "timed_steps": self.steps - self.warmup, "tokens": self.tokens}
            (Path(self.out_dir) / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))
