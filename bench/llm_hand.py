"""The hand-written side of ``bench/llm.py``: a nanoGPT-style model and training loops, no factory code.

- ``CharGPT`` and ``train_char``: nanoGPT's character-level recipe (``config/train_shakespeare_char.py``
  with its README's CPU settings: 4 layers, 4 heads, 128 wide, block 64, batch 12, dropout 0,
  2000 iterations, lr 1e-3 warmed up 100 iterations and decayed to 1e-4, AdamW betas
  (0.9, 0.99), weight decay 0.1 on matrices, gradient clipping 1.0), as an external anchor.
- ``hand_loop``: the loop nanoGPT's ``train.py`` runs (forward, cross-entropy, backward, clip,
  AdamW step, per-step lr), around any network: ``bench/llm.py`` times it against factory's
  ``gpt`` on the same ``factory.models.GPT`` and batches.
- ``python bench/llm_hand.py ddp --world 2 ...``: the same loop under torch DDP (gloo) in spawned
  processes, each rank on its own windows; writes tokens/s as JSON.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F


class _Block(nn.Module):
    def __init__(self, n_embd: int, n_head: int) -> None:
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(n_embd, bias=False), nn.LayerNorm(n_embd, bias=False)
        self.c_attn, self.c_proj = nn.Linear(n_embd, 3 * n_embd, bias=False), nn.Linear(n_embd, n_embd, bias=False)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd, bias=False), nn.GELU(),
                                 nn.Linear(4 * n_embd, n_embd, bias=False))
        self.n_head = n_head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)  # (B, H, T, D)
                   for z in self.c_attn(self.ln_1(x)).split(c, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.c_proj(y.transpose(1, 2).contiguous().view(b, t, c))
        return x + self.mlp(self.ln_2(x))


class CharGPT(nn.Module):
    """nanoGPT's model (bias=False, dropout 0): learned positions, pre-norm blocks, tied head."""

    def __init__(self, vocab_size: int, block_size: int, n_layer: int = 4, n_head: int = 4, n_embd: int = 128):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab_size, n_embd), nn.Embedding(block_size, n_embd)
        self.blocks = nn.ModuleList(_Block(n_embd, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd, bias=False)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2: residual projections scaled by depth
            if name.endswith("c_proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * n_layer))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def nanogpt_lr(it: int, lr: float, min_lr: float, warmup: int, decay_iters: int) -> float:
    """nanoGPT's ``get_lr``: linear warmup, cosine decay to ``min_lr`` at ``decay_iters``."""
    if it < warmup:
        return lr * (it + 1) / (warmup + 1)
    if it > decay_iters:
        return min_lr
    ratio = (it - warmup) / (decay_iters - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


def adamw(net: nn.Module, lr: float, betas: tuple[float, float], weight_decay: float) -> torch.optim.AdamW:
    """nanoGPT's ``configure_optimizers``: decay every parameter of 2 or more dimensions."""
    params = [p for p in net.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas)


def train_char(train: torch.Tensor, val: torch.Tensor, vocab_size: int, iters: int = 2000, batch: int = 12,
               block: int = 64, eval_iters: int = 200, seed: int = 1337) -> dict:
    """nanoGPT's shakespeare_char CPU recipe on ``train``/``val`` character ids; returns val loss (nats per char).

    The final loss is nanoGPT's ``estimate_loss``: the mean over ``eval_iters`` random batches.
    """
    torch.manual_seed(seed)
    net = CharGPT(vocab_size, block)
    optimizer = adamw(net, 1e-3, (0.9, 0.99), 0.1)

    def get_batch(data: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ix = torch.randint(len(data) - block, (batch,))
        return (torch.stack([data[i:i + block] for i in ix]).long(),
                torch.stack([data[i + 1:i + 1 + block] for i in ix]).long())

    start = time.perf_counter()
    for it in range(iters):
        for group in optimizer.param_groups:
            group["lr"] = nanogpt_lr(it, 1e-3, 1e-4, 100, iters)
        x, y = get_batch(train)
        loss = F.cross_entropy(net(x).view(-1, vocab_size), y.view(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
    seconds = time.perf_counter() - start
    net.eval()
    with torch.no_grad():
        losses = {name: float(torch.stack([F.cross_entropy(net(x).view(-1, vocab_size), y.view(-1))
                                           for x, y in (get_batch(data) for _ in range(eval_iters))]).mean())
                  for name, data in (("train", train), ("val", val))}
    return {"val_loss": losses["val"], "train_loss": losses["train"], "iters": iters, "train_s": round(seconds, 1),
            "parameters": sum(p.numel() for p in net.parameters())}


def hand_loop(net: nn.Module, batches, steps: int, warmup_steps: int, lr: float = 1e-3,
              weight_decay: float = 0.1, grad_clip: float = 1.0, total_steps: int | None = None) -> dict:
    """nanoGPT's training loop over ``batches`` ((x, y) pairs): tokens/s after ``warmup_steps`` steps.

    The lr follows warmup + cosine per step (as factory's ``model.schedule``); clipping as
    ``trainer.gradient_clip_val``.
    """
    optimizer = adamw(net, lr, (0.9, 0.95), weight_decay)
    total = total_steps or steps
    net.train()
    tokens, began = 0, None
    for step, (x, y) in enumerate(batches):
        if step == steps:
            break
        if step == warmup_steps:
            began, tokens = time.perf_counter(), 0
        for group in optimizer.param_groups:
            group["lr"] = nanogpt_lr(step, lr, lr * 0.1, min(100, total // 10), total)
        logits = net(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
        optimizer.step()
        tokens += y.numel()
    seconds = time.perf_counter() - began
    return {"tokens_per_s": tokens / seconds, "steps": steps - warmup_steps, "seconds": seconds,
            "loss": loss.item()}


def _ddp_worker(rank: int, args: argparse.Namespace) -> None:
    """One rank of the hand DDP loop: gloo, the GPT the config builds, this rank's windows."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from factory.config import compose
    from factory.config.instantiate import build
    from factory.data.text.windows import RandomWindows, window_loader
    from factory.models.gpt import GPT

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(args.port))
    dist.init_process_group("gloo", rank=rank, world_size=args.world)
    torch.manual_seed(args.seed)
    cfg = compose("train", args.overrides)
    dm = build(cfg.data, "data")
    dm.setup("fit")  # cached tokens: the factory runs built them
    net_cfg = {k: v for k, v in cfg.model.net.items() if k != "_target_"}
    net = DistributedDataParallel(GPT(dm.input_spec, **net_cfg))
    n = dm.split_sizes["train"]
    batch = int(dm.batch_size)  # one epoch of exactly the timed steps' windows
    sampler = RandomWindows(n, dm.block_size, batch, args.steps * batch * args.world, dm.split_seed, rank, args.world)
    loader = window_loader(dm.tokens("train"), dm.block_size, sampler)
    result = hand_loop(net, iter(loader), args.steps, args.warmup, lr=float(cfg.model.optimizer.lr),
                       weight_decay=float(cfg.model.weight_decay),
                       grad_clip=float(cfg.trainer.get("gradient_clip_val") or 1.0), total_steps=args.steps)
    rates = [None] * args.world
    dist.all_gather_object(rates, result["tokens_per_s"])
    if rank == 0:
        Path(args.out).write_text(json.dumps({**result, "tokens_per_s": sum(rates), "per_rank": rates}))
    dist.destroy_process_group()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="hand DDP loop (gloo) of bench/llm.py")
    p.add_argument("mode", choices=["ddp"])
    p.add_argument("--world", type=int, default=2)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--port", type=int, default=29533)
    p.add_argument("--out", required=True)
    # after "--": train.py overrides, the same config as the factory run
    args, rest = p.parse_known_args(argv)
    args.overrides = [r for r in rest if r != "--"]
    torch.multiprocessing.spawn(_ddp_worker, args=(args,), nprocs=args.world, join=True)


if __name__ == "__main__":
    main()
