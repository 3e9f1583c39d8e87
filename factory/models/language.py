"""The LightningModule for language modelling: next-token loss, perplexity, schedule, generation."""
from __future__ import annotations

import logging
import math
import time
from typing import Any, Iterator, Mapping

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from torch import nn
from torch.nn import functional as F
from torchmetrics import MeanMetric

from factory.errors import ConfigError
from factory.models.module import _call, _plain

log = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, torch.Tensor]  # (x, y): (B, T) token ids, y = x shifted by one
TASK = "language_modeling"


class LanguageModel(pl.LightningModule):
    """Next-token prediction around a ``GPT`` (or any ``(B, T) ids -> (B, T, vocab) logits`` network).

    Metrics: ``train/loss`` (on Lightning's log grid), ``train/loss_epoch``, ``val/loss`` and
    ``test/loss`` (mean token cross-entropy over the split), ``val/perplexity`` and
    ``test/perplexity`` (``exp`` of that mean), ``train/tokens_per_s`` (all ranks together, per
    epoch) and, on CUDA, ``train/mfu`` (model FLOPs utilization, per device).

    Args:
        net: a network config (``_target_`` + kwargs) built with ``spec`` as its first argument
            in ``configure_model`` (inside ZeRO-3's sharding context), or an ``nn.Module``.
        optimizer: a partial optimizer config (``_partial_: true``), called with two parameter
            groups: the Linear layers' weights, decayed by ``weight_decay``, and the rest
            (embeddings, which the output head shares, LayerNorms, biases) not decayed.
        schedule: ``{warmup_steps, min_lr_ratio}``: linear warmup, then cosine decay to
            ``min_lr_ratio`` x lr at the last step (``trainer.max_steps``, else the estimated
            total), stepped per optimizer step; ``None``: constant.
        weight_decay: decoupled decay of the Linear weights (the optimizer's own is overridden).
        peak_flops: the device's peak FLOP/s for ``train/mfu``; ``None``: ``factory.models.mfu``'s table.
        spec: the data's ``TextSpec`` (``TextDataModule.input_spec``) or its dict.
    """

    def __init__(self, net: nn.Module | Mapping, optimizer: Mapping, schedule: Mapping | None = None,
                 weight_decay: float = 0.1, peak_flops: float | None = None, spec: Any = None) -> None:
        super().__init__()
        if spec is None:
            raise ValueError("LanguageModel needs spec= (TextDataModule.input_spec)")
        net, optimizer, schedule = (v if isinstance(v, nn.Module) else _plain(v) for v in (net, optimizer, schedule))
        self.spec: dict = dict(_plain(spec) if isinstance(spec, Mapping) else spec.to_dict())
        if self.spec.get("task") != TASK:
            raise ConfigError(f"model: a language model trains on text (data=text); this data's task is "
                              f"{self.spec.get('task')!r}")
        self.net: nn.Module | None = None
        if isinstance(net, nn.Module):
            self.net = net
            self.save_hyperparameters(ignore=["net"])
        else:
            _check_net(net)
            self.save_hyperparameters({"net": net})  # built in configure_model
        self.save_hyperparameters({"optimizer": optimizer, "schedule": schedule, "weight_decay": weight_decay,
                                   "peak_flops": peak_flops, "spec": self.spec})
        self.task = TASK
        self.tokenizer_json: str | None = None  # set in setup() from the DataModule, or from a checkpoint
        self._tokenizer = None
        # Keyed "<stage>_": a bare "train" would shadow nn.Module.train.
        self.losses = nn.ModuleDict({f"{stage}_": MeanMetric() for stage in ("train", "val", "test")})

    # --- network ------------------------------------------------------------

    def configure_model(self) -> None:
        """Build the configured network; under ZeRO-3 each process only ever holds its shard."""
        if self.net is None:
            self.net = instantiate(self.hparams.net, _partial_=True, _convert_="all")(self.spec)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids -> (B, T, vocab_size) logits."""
        if self.net is None:  # used outside a Trainer, e.g. right after construction
            self.configure_model()
        return self.net(idx)

    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over every token of the batch."""
        logits = self(x)
        return F.cross_entropy(logits.view(-1, logits.size(-1)).float(), y.reshape(-1))

    # --- training -----------------------------------------------------------

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        tokenizer_json = getattr(datamodule, "tokenizer_json", None)
        if tokenizer_json is not None:
            self.tokenizer_json, self._tokenizer = tokenizer_json, None

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = self._loss(x, y)
        # A running sum (MeanMetric.update per step costs more), folded in once per epoch; and
        # self.log only on the steps Lightning writes (its log grid), as SupervisedModel does.
        self._train_loss_sum = getattr(self, "_train_loss_sum", 0.0) + loss.detach() * y.numel()
        self._train_tokens = getattr(self, "_train_tokens", 0) + y.numel()
        if (self.global_step + 1) % max(self.trainer.log_every_n_steps, 1) == 0:
            self.log("train/loss", loss.detach(), on_step=True, on_epoch=False, prog_bar=True)
        return loss

    def on_train_epoch_start(self) -> None:
        self._train_loss_sum, self._train_tokens = torch.zeros((), device=self.device), 0
        self._clock: list[float] | None = None  # [first step's start, last step's end]
        self._paused = 0.0  # seconds of validation between steps (val_check_interval)
        self._clock_tokens = 0
        self._validation_seconds = 0.0

    def on_train_batch_start(self, batch: Batch, batch_idx: int) -> None:
        if getattr(self, "_clock", None) is None:
            self._clock, self._paused, self._clock_tokens = [time.perf_counter()] * 2, 0.0, 0
        # A validation since the last step (val_check_interval) is not training time; one at the
        # epoch's end comes after the last step, outside the clock.
        self._paused += getattr(self, "_validation_seconds", 0.0)
        self._validation_seconds = 0.0

    def on_train_batch_end(self, outputs: Any, batch: Batch, batch_idx: int) -> None:
        self._clock[1] = time.perf_counter()
        self._clock_tokens += batch[0].numel()

    def on_validation_epoch_start(self) -> None:
        self._validation_started = time.perf_counter()

    def running_train_loss(self) -> float | None:
        """Mean training loss of this epoch so far on this process (``None`` before a step)."""
        tokens = getattr(self, "_train_tokens", 0)
        return float(self._train_loss_sum) / tokens if tokens else None

    def on_train_epoch_end(self) -> None:
        if getattr(self, "_train_tokens", 0):
            self.losses["train_"].update(self._train_loss_sum / self._train_tokens, weight=self._train_tokens)
        self.log("train/loss_epoch", self.losses["train_"].compute(), sync_dist=True)
        self.losses["train_"].reset()
        self._log_throughput()

    def _log_throughput(self) -> None:
        """``train/tokens_per_s`` (summed over ranks) and on CUDA ``train/mfu`` of this epoch's steps.

        From the first step's start to the last step's end, validation excluded; every rank
        makes the same steps, so every rank logs (the sums are collective) or none does.
        """
        clock = getattr(self, "_clock", None)
        seconds = clock[1] - clock[0] - self._paused if clock else 0.0
        if not clock or self._clock_tokens == 0 or seconds <= 0:
            return
        rate = self._clock_tokens / seconds  # this rank's
        self.log("train/tokens_per_s", float(rate), sync_dist=True, reduce_fx="sum")
        peak = self._peak_flops()
        if peak is not None and hasattr(self.net, "flops_per_token"):
            from factory.models.mfu import mfu

            self.log("train/mfu", mfu(rate, self.net.flops_per_token(), peak), sync_dist=True)

    def _peak_flops(self) -> float | None:
        """The device's peak FLOP/s at the run's precision (CUDA only): ``peak_flops``, else the table."""
        if self.device.type != "cuda":
            return None
        if self.hparams.peak_flops is not None:
            return float(self.hparams.peak_flops)
        from factory.models.mfu import peak_flops

        name = torch.cuda.get_device_name(self.device)
        peak = peak_flops(name, str(self.trainer.precision))
        if peak is None and not getattr(self, "_warned_peak", False):
            self._warned_peak = True
            log.warning("train/mfu: no peak FLOP/s known for %r; set model.peak_flops to log it", name)
        return peak

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        from factory.distributed.ranks import gather_per_rank

        checkpoint["tokenizer"] = self.tokenizer_json  # a checkpoint alone can generate
        # A mid-epoch checkpoint (SIGTERM) resumes without on_train_epoch_start: keep every
        # rank's running loss, so train/loss_epoch comes out as uninterrupted.
        if hasattr(self, "_train_tokens"):
            checkpoint["train_loss_running"] = gather_per_rank((float(self._train_loss_sum), self._train_tokens))

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        from factory.distributed.ranks import own_state

        if checkpoint.get("tokenizer") is not None:
            self.tokenizer_json, self._tokenizer = checkpoint["tokenizer"], None
        if "train_loss_running" in checkpoint:
            self._train_loss_sum, self._train_tokens = own_state(checkpoint["train_loss_running"], self.global_rank)

    # --- evaluation ---------------------------------------------------------

    def _evaluation_step(self, stage: str, batch: Batch) -> None:
        x, y = batch
        self.losses[f"{stage}_"].update(self._loss(x, y), weight=y.numel())  # token-weighted

    def _evaluation_epoch_end(self, stage: str) -> None:
        # compute() sums over processes once per epoch: the mean token loss of the whole split.
        loss = self.losses[f"{stage}_"].compute()
        self.log_dict({f"{stage}/loss": loss, f"{stage}/perplexity": torch.exp(loss)}, prog_bar=stage == "val",
                      sync_dist=True)
        self.losses[f"{stage}_"].reset()

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluation_step("val", batch)

    def on_validation_epoch_end(self) -> None:
        self._evaluation_epoch_end("val")
        if getattr(self, "_clock", None) is not None and self.trainer.training:
            self._validation_seconds = time.perf_counter() - self._validation_started

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluation_step("test", batch)

    def on_test_epoch_end(self) -> None:
        self._evaluation_epoch_end("test")

    def monitorable_metrics(self) -> list[str]:
        """What ``monitor.metric`` may name: the per-epoch values this model logs."""
        return ["val/loss", "val/perplexity", "train/loss_epoch"]

    # --- optimization -------------------------------------------------------

    def parameter_groups(self) -> list[dict[str, Any]]:
        """``[{decayed params, weight_decay}, {the rest, weight_decay: 0}]``.

        Decayed: the weights of Linear layers. Not decayed: LayerNorms and biases (as in GPT-2
        and nanoGPT), and embeddings. nanoGPT decays every matrix, its tied token embedding
        included; here the tied matrix is not decayed: decoupled decay shrinks every row at
        every step while a rare token's row is only pulled back when that token occurs, which
        on small corpora erodes rare tokens (minGPT and the contract of issue 16 leave
        embeddings undecayed).
        """
        if self.net is None:
            self.configure_model()
        embeddings = {id(m.weight) for m in self.net.modules() if isinstance(m, nn.Embedding)}
        decay = {id(m.weight): m.weight for m in self.net.modules()
                 if isinstance(m, nn.Linear) and id(m.weight) not in embeddings}
        rest = [p for p in self.net.parameters() if id(p) not in decay]  # parameters() lists a tied one once
        return [{"params": list(decay.values()), "weight_decay": float(self.hparams.weight_decay)},
                {"params": rest, "weight_decay": 0.0}]

    def configure_optimizers(self) -> Any:
        optimizer = _call(self.hparams.optimizer, "model.optimizer", self.parameter_groups())
        if self.hparams.schedule is None:
            return optimizer
        # The last step is set in on_train_start: estimated_stepping_batches here would build the train
        # loader before a resumed fit restores its position, and the epoch would restart at batch 0.
        self._schedule = WarmupCosine(total_steps=None, **self.hparams.schedule)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self._schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_train_start(self) -> None:
        if getattr(self, "_schedule", None) is not None:
            self._schedule.total_steps = self._total_steps()

    def _total_steps(self) -> int:
        trainer = self.trainer
        # Lightning's estimate is the smaller of max_steps and the epochs' total: training ends at the first
        total = trainer.estimated_stepping_batches
        if not math.isfinite(total):
            raise ConfigError("model.schedule: the cosine schedule needs a last step: set trainer.max_steps "
                              "or trainer.max_epochs")
        return max(int(total), 1)

    # --- generation ---------------------------------------------------------

    @property
    def tokenizer(self):
        """The ``tokenizers.Tokenizer`` this model was trained with (from its data or checkpoint)."""
        if self._tokenizer is None:
            if self.tokenizer_json is None:
                raise ConfigError("model: this LanguageModel has no tokenizer (neither trained with a "
                                  "TextDataModule nor loaded from a checkpoint that holds one)")
            from factory.data.text.tokenizer import from_json

            self._tokenizer = from_json(self.tokenizer_json)
        return self._tokenizer

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 generator: torch.Generator | None = None, eos_id: int | None = None) -> torch.Tensor:
        """(B, T) prompt ids -> (B, T + n) with ``n <= max_new_tokens`` sampled ids (fewer when every
        row reached ``eos_id``).

        Each step sees the last ``block_size`` tokens. ``temperature`` 0 is greedy; ``top_k``
        samples among the k likeliest; ``generator`` (seeded) makes the sampling reproducible.
        """
        for token in self._sample(idx, max_new_tokens, temperature, top_k, generator, eos_id):
            idx = torch.cat((idx, token), dim=1)
        return idx

    def _sample(self, idx: torch.Tensor, max_new_tokens: int, temperature: float, top_k: int | None,
                generator: torch.Generator | None, eos_id: int | None) -> Iterator[torch.Tensor]:
        """Yield the (B, 1) next ids one step at a time, in eval mode (restored afterwards)."""
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        if idx.shape[1] == 0:
            raise ValueError("generation needs at least one prompt token")
        if self.net is None:
            self.configure_model()
        was_training, block_size = self.training, int(self.spec["block_size"])
        self.eval()
        try:
            idx = idx.to(self.device)
            done = torch.zeros(idx.shape[0], dtype=torch.bool, device=idx.device)
            for _ in range(max_new_tokens):
                with torch.no_grad():
                    logits = self(idx[:, -block_size:])[:, -1, :].float()  # (B, vocab)
                if temperature == 0:
                    token = logits.argmax(dim=-1, keepdim=True)
                else:
                    logits = logits / temperature
                    if top_k is not None:
                        kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, [-1]]
                        logits = logits.masked_fill(logits < kth, float("-inf"))
                    token = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator)
                idx = torch.cat((idx, token), dim=1)
                yield token
                if eos_id is not None:
                    done |= token.squeeze(1) == eos_id
                    if bool(done.all()):
                        return
        finally:
            self.train(was_training)

    def stream_text(self, prompt: str, max_new_tokens: int = 64, temperature: float = 1.0, top_k: int | None = None,
                    seed: int | None = None, stop_at_eos: bool = True) -> Iterator[str]:
        """Sample a continuation of ``prompt`` and yield its text piece by piece (for server-sent events).

        The pieces join to ``generate_text``'s result; a piece is held back while it ends in an
        unfinished UTF-8 character. ``seed`` makes the sampling reproducible (any device of one
        kind); ``stop_at_eos`` ends at the end-of-text token (not included).
        """
        tokenizer, eos_id = self.tokenizer, self.spec.get("eos_id")
        ids = tokenizer.encode(prompt).ids
        if not ids:  # an empty prompt starts a new document, as in training
            if eos_id is None:
                raise ValueError("an empty prompt needs the tokenizer's end-of-text token, and this one has none")
            ids = [eos_id]
        generator = None
        if seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(int(seed))
        idx = torch.tensor([ids], dtype=torch.long, device=self.device)
        new: list[int] = []
        sent = ""
        for token in self._sample(idx, max_new_tokens, temperature, top_k, generator,
                                  eos_id if stop_at_eos else None):
            token_id = int(token)
            if stop_at_eos and token_id == eos_id:
                break
            new.append(token_id)
            text = tokenizer.decode(new)
            if not text.endswith("\ufffd") and text.startswith(sent) and len(text) > len(sent):
                yield text[len(sent):]
                sent = text
        text = tokenizer.decode(new)
        if text.startswith(sent) and len(text) > len(sent):
            yield text[len(sent):]

    def generate_text(self, prompt: str, max_new_tokens: int = 64, temperature: float = 1.0, top_k: int | None = None,
                      seed: int | None = None, stop_at_eos: bool = True) -> str:
        """The sampled continuation of ``prompt`` (without the prompt): ``stream_text``'s pieces joined.

        Example:
            >>> model = factory.models.load_model("outputs/gpt_small/<run>/checkpoints/best.ckpt")
            >>> model.generate_text("def main(", max_new_tokens=40, top_k=50, seed=0)
        """
        return "".join(self.stream_text(prompt, max_new_tokens, temperature, top_k, seed, stop_at_eos))


class WarmupCosine:
    """LR multiplier at optimizer step ``s``: ``(s + 1) / (warmup_steps + 1)`` during warmup, then cosine
    from 1 to ``min_lr_ratio`` at ``total_steps``, flat after. A plain object: ``LambdaLR`` saves its
    ``__dict__`` with the scheduler (and a resume updates this one in place)."""

    def __init__(self, total_steps: int | None, warmup_steps: int = 100, min_lr_ratio: float = 0.1) -> None:
        self.total_steps, self.warmup_steps, self.min_lr_ratio = total_steps, warmup_steps, min_lr_ratio

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        if self.total_steps is None:  # LambdaLR's first call, before training starts and the total is known
            return 1.0
        span = max(self.total_steps - self.warmup_steps, 1)
        progress = min((step - self.warmup_steps) / span, 1.0)
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def _check_net(net: Mapping) -> None:
    """Sizes the network cannot take, refused at construction (before any process starts)."""
    if net.get("_target_") == "factory.models.GPT":
        from factory.models.gpt import check_sizes

        check_sizes(**{k: net[k] for k in ("n_layer", "n_head", "n_embd", "dropout", "positions") if k in net})
