"""Language models on this machine: quality, tokens/s against a hand-written loop, memory against the planner.

    python bench/llm.py                  # everything (~30 min on the idle 2-core machine); rewrites the
                                         # "Language models" section of docs/benchmarks.md
    python bench/llm.py --quick          # smoke run (< 2 min, tiny sizes): writes outputs/bench/llm-quick.json only
    python bench/llm.py --parts memory --no-write
    python bench/llm.py --from-json outputs/bench/llm.json   # re-render saved results

- **quality**: ``scripts/train.py experiment=gpt_small`` as it is, then its best checkpoint on every
  val token (the whole split, non-overlapping windows) against the unigram and bigram that
  ``factory.training.baselines.language_model`` fits on the same train tokens (target: model
  perplexity <= bigram / 2). Beside it, nanoGPT's character-level CPU recipe (``llm_hand.train_char``)
  on the same documents split the same way, at character level: its losses are per character.
- **throughput**: tokens/s of factory's ``gpt`` against nanoGPT's loop around the same
  ``factory.models.GPT`` and the same batches (target >= 0.95). ``single``: both in this process
  (factory's Trainer as ``training.recipe`` builds it), alternating; ``ddp`` and ``deepspeed_zero3``
  on 2 ranks: ``scripts/train.py`` against ``llm_hand.py ddp`` (torch DDP, gloo), alternating.
  Timed by ``llm_clock.StepClock`` after warm-up steps; validation off, callbacks=none.
- **memory**: peak RSS per rank (``memory_probe.MemoryProbe``) of ``gpt2_124m`` at a small batch and
  block 256 on 2 ranks under ddp and ZeRO-1/2/3, beside ``make_plan`` for the same config plus the
  process's RSS before the model (the planner leaves that to its headroom); target within 15%.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

RESULTS = REPO / "outputs" / "bench" / "llm.json"
CACHE = REPO / "data" / "text-cache"  # tokenizers and token files, shared by every run of the bench
COMMON = ["logger=csv", "trainer.enable_progress_bar=false", "trainer.accelerator=cpu", f"data.cache_dir={CACHE}"]
PARTS = ("quality", "throughput", "memory")
# callbacks=none, except that a preset's callbacks.early_stopping.patience would then be a node without _target_
NO_CALLBACKS = [f"callbacks.{name}=null" for name in ("model_checkpoint", "preemption", "early_stopping",
                                                       "learning_rate_monitor")]
GB = 1e9

# name -> settings; --quick swaps in tiny sizes so every path runs in under two minutes.
FULL = {
    "quality": {"overrides": ["experiment=gpt_small"], "char_iters": 2000, "char_eval_iters": 200, "timeout": 900},
    "throughput": {"overrides": ["experiment=gpt_small"], "steps": 60, "warmup": 5, "repeats": 3,
                   "strategies": ["single", "ddp", "deepspeed_zero3"]},
    "memory": {"overrides": ["experiment=gpt2_124m", "data.block_size=256", "data.batch_size=2",
                            "trainer.accumulate_grad_batches=1"], "steps": 3,
               "strategies": ["ddp", "deepspeed_zero1", "deepspeed_zero2", "deepspeed_zero3"]},
}
QUICK = {
    "quality": {"overrides": ["experiment=gpt_tiny", "trainer.max_steps=20", "data.source.max_bytes=2000000"],
                "char_iters": 30, "char_eval_iters": 10, "timeout": 300},
    "throughput": {"overrides": ["experiment=gpt_tiny", "data.source.max_bytes=2000000"], "steps": 8, "warmup": 2,
                   "repeats": 1, "strategies": ["single", "ddp"]},
    "memory": {"overrides": ["experiment=gpt_tiny", "data.source.max_bytes=2000000"], "steps": 2,
               "strategies": ["ddp"]},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes, a smoke run (< 2 min); never writes the doc")
    p.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    p.add_argument("--from-json", type=Path, help="render saved results instead of running")
    p.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    p.add_argument("--strategies", nargs="+", help="only these strategies in the throughput and memory parts")
    p.add_argument("--threads", type=int, help="torch threads of the one-process runs (default: torch's, one per "
                   "core); 2-rank runs use one per rank. 1 is steadier on a busy machine")
    return p.parse_args(argv)


def _env(tmp: str, **extra: str) -> dict:
    env = dict(os.environ, FACTORY_ROOT=tmp, WANDB_MODE="offline", **extra,
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "bench"), os.environ.get("PYTHONPATH")])))
    env.pop("FACTORY_RUN_ID", None)
    return env


def train(overrides: list[str], tmp: str, timeout: int, **env: str) -> tuple[int, float, str]:
    """``scripts/train.py`` with ``overrides`` under ``FACTORY_ROOT=tmp``: (exit code, wall s, stderr tail)."""
    start = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "scripts/train.py", *COMMON, *overrides], cwd=REPO,
                              env=_env(tmp, **env), capture_output=True, text=True, timeout=timeout)
        code, tail = done.returncode, (done.stderr + done.stdout)[-2000:]
    except subprocess.TimeoutExpired:
        code, tail = -1, f"timed out after {timeout} s"
    return code, time.monotonic() - start, tail


def _compose(overrides: list[str]):
    from factory.config import compose

    return compose("train", [*COMMON, *overrides])


def _datamodule(overrides: list[str]):
    from factory.config.instantiate import build

    dm = build(_compose(overrides).data, "data")
    dm.setup("fit")
    return dm


# --- quality ----------------------------------------------------------------------------------


def quality(settings: dict) -> dict:
    """Train the preset, score its best checkpoint on every val token, fit the n-grams, run the char anchor."""
    overrides = settings["overrides"]
    _datamodule(overrides)  # tokenizer and token files cached before the clock of the run starts
    with tempfile.TemporaryDirectory(prefix="llm-quality-") as tmp:
        code, wall, tail = train([*overrides, "test=false"], tmp, settings["timeout"])
        if code != 0:
            return {"error": tail.strip().splitlines()[-1] if tail.strip() else f"exit {code}", "wall_s": wall}
        ckpt = _best_checkpoint(Path(tmp))
        model_val = evaluate(ckpt, overrides)
        run_metrics = _run_metrics(Path(tmp))
    dm = _datamodule(overrides)
    from factory.training.baselines import language_model

    baselines = language_model(dm)
    cfg = _compose(overrides)
    return {"overrides": overrides, "wall_s": round(wall, 1), "parameters": model_val.pop("parameters"),
            "model": model_val, "run_val_perplexity": run_metrics.get("val/perplexity"),
            "baselines": baselines, "split_tokens": dm.split_sizes, "vocab_size": dm.input_spec.vocab_size,
            "block_size": dm.block_size, "max_steps": cfg.trainer.get("max_steps"),
            "eval_windows": cfg.data.get("eval_windows"),
            "char": char_anchor(overrides, settings["char_iters"], settings["char_eval_iters"])}


def _best_checkpoint(root: Path) -> Path:
    found = sorted(root.glob("outputs/**/*.ckpt"))
    if not found:
        raise RuntimeError(f"no checkpoint under {root}/outputs")
    return next((p for p in found if p.name.startswith("best")), found[-1])


def _run_metrics(root: Path) -> dict:
    """The run's own validation metrics (``metrics.json``'s ``val`` section, the best checkpoint's)."""
    found = sorted(root.glob("outputs/**/metrics.json"))
    return json.loads(found[-1].read_text()).get("val", {}) if found else {}


def evaluate(ckpt: Path, overrides: list[str]) -> dict:
    """Mean cross-entropy of the checkpoint on every val token (``data.eval_windows=null``)."""
    import torch
    from torch.nn import functional as F

    from factory.models import load_model

    model = load_model(str(ckpt))
    dm = _datamodule([*overrides, "data.eval_windows=null"])
    total, tokens = 0.0, 0
    with torch.no_grad():
        for x, y in dm.val_dataloader():
            logits = model(x)
            total += float(F.cross_entropy(logits.view(-1, logits.size(-1)).float(), y.reshape(-1), reduction="sum"))
            tokens += y.numel()
    loss = total / tokens
    return {"loss": loss, "perplexity": math.exp(loss), "tokens": tokens,
            "parameters": sum(p.numel() for p in model.parameters())}


def char_anchor(overrides: list[str], iters: int, eval_iters: int = 200) -> dict:
    """nanoGPT's shakespeare_char CPU recipe on the same documents, split the same way, per character."""
    import numpy as np
    import torch

    from factory.data.text.corpus import document_bytes
    from factory.data.text.embedded import embedded_corpus
    from factory.data.text.split import split_documents
    from llm_hand import train_char

    data = _compose(overrides).data
    documents = embedded_corpus(data.source.get("max_bytes")).read()
    split = split_documents(document_bytes(documents), data.val_fraction, data.test_fraction, int(data.split_seed))
    text = {name: "\n".join(documents[i] for i in split[name]) for name in ("train", "val")}
    points = {name: np.frombuffer(t.encode("utf-32-le"), dtype=np.uint32) for name, t in text.items()}
    chars = np.unique(np.concatenate(list(points.values())))  # nanoGPT: the vocabulary of the whole text

    def encode(codes: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.searchsorted(chars, codes).astype(np.int64))

    result = train_char(encode(points["train"]), encode(points["val"]), len(chars), iters=iters, eval_iters=eval_iters)
    return {**result, "vocab_size": len(chars), "train_chars": len(text["train"]), "val_chars": len(text["val"]),
            "eval_iters": eval_iters}


# --- throughput -------------------------------------------------------------------------------


def throughput(settings: dict) -> list[dict]:
    """Factory against the hand loop, per strategy, alternating, ``repeats`` times each."""
    _datamodule(settings["overrides"])  # cache the tokens once
    results = []
    for strategy in settings["strategies"]:
        rates: dict[str, list[float]] = {"factory": [], "hand": []}
        errors = []
        for repeat in range(settings["repeats"]):
            for loop in (("factory", "hand") if repeat % 2 == 0 else ("hand", "factory")):
                run = (_single if strategy == "single" else _two_ranks)(loop, strategy, settings)
                if "error" in run:
                    errors.append(f"{loop}: {run['error']}")
                else:
                    rates[loop].append(run["tokens_per_s"])
                print(f"  {strategy} {loop}: {run.get('tokens_per_s') or run.get('error')}", flush=True)
        pairs = list(zip(rates["factory"], rates["hand"]))
        results.append({"strategy": strategy, "ranks": 1 if strategy == "single" else 2,
                        "factory": _median(rates["factory"]), "hand": _median(rates["hand"]),
                        "ratio": statistics.median(f / h for f, h in pairs) if pairs else None,
                        "rates": rates, "errors": errors})
    return results


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _run_overrides(settings: dict, strategy: str, ranks: int) -> list[str]:
    return [*settings["overrides"], f"strategy={strategy}", f"trainer.devices={ranks}",
            f"trainer.max_steps={settings['steps']}", "trainer.limit_val_batches=0", "test=false", *NO_CALLBACKS,
            "plan.check=false"]


def _single(loop: str, strategy: str, settings: dict) -> dict:
    """One process: factory's Trainer (as ``training.recipe`` builds it) or the hand loop, same GPT and batches."""
    import torch

    from factory.config.instantiate import build
    from factory.models.gpt import GPT
    from factory.training.components import build_trainer
    from llm_clock import StepClock
    from llm_hand import hand_loop

    overrides = _run_overrides(settings, strategy, 1)
    with tempfile.TemporaryDirectory(prefix="llm-single-") as tmp:
        cfg = _compose([*overrides, f"paths.run_dir={tmp}/run"])
        dm = build(cfg.data, "data")
        dm.setup("fit")
        torch.manual_seed(cfg.seed)
        if loop == "hand":
            net = GPT(dm.input_spec, **{k: v for k, v in cfg.model.net.items() if k != "_target_"})

            def batches():
                while True:
                    yield from dm.train_dataloader()
            result = hand_loop(net, batches(), settings["steps"], settings["warmup"], lr=float(cfg.model.optimizer.lr),
                               weight_decay=float(cfg.model.weight_decay),
                               grad_clip=float(cfg.trainer.get("gradient_clip_val") or 1.0))
            return {"tokens_per_s": result["tokens_per_s"]}
        import pytorch_lightning as pl

        pl.seed_everything(cfg.seed, workers=True, verbose=False)
        model = build(cfg.model, "model", spec=dm.input_spec.to_dict())
        trainer = build_trainer(cfg, Path(tmp) / "run")
        clock = StepClock(settings["warmup"])
        trainer.callbacks.append(clock)
        with contextlib.redirect_stdout(io.StringIO()):  # Lightning's model summary
            trainer.fit(model, datamodule=dm)
        return {"tokens_per_s": clock.tokens_per_s}


def _two_ranks(loop: str, strategy: str, settings: dict) -> dict:
    """``scripts/train.py`` on 2 ranks with the step clock, or ``llm_hand.py ddp``; one thread per rank."""
    overrides = _run_overrides(settings, strategy, 2)
    with tempfile.TemporaryDirectory(prefix="llm-ranks-") as tmp:
        if loop == "factory":
            code, _, tail = train([*overrides, "+callbacks.llmclock._target_=llm_clock.StepClock",
                                   f"+callbacks.llmclock.warmup={settings['warmup']}"], tmp, 900,
                                  LLMCLOCK_DIR=f"{tmp}/clock", OMP_NUM_THREADS="1")
            ranks = [json.loads(p.read_text()) for p in sorted(Path(tmp, "clock").glob("rank*.json"))]
            if code != 0 or len(ranks) != 2:
                return {"error": tail.strip().splitlines()[-1] if tail.strip() else f"exit {code}"}
            return {"tokens_per_s": sum(r["tokens_per_s"] for r in ranks)}
        out = Path(tmp) / "hand.json"
        done = subprocess.run([sys.executable, "bench/llm_hand.py", "ddp", "--world", "2", "--steps",
                               str(settings["steps"]), "--warmup", str(settings["warmup"]), "--out", str(out),
                               "--", *COMMON, *overrides], cwd=REPO, env=_env(tmp, OMP_NUM_THREADS="1"),
                              capture_output=True, text=True, timeout=900)
        if done.returncode != 0 or not out.exists():
            return {"error": (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]}
        return {"tokens_per_s": json.loads(out.read_text())["tokens_per_s"]}


# --- memory -----------------------------------------------------------------------------------


def memory(settings: dict) -> list[dict]:
    """Peak RSS per rank against the planner, one strategy at a time (memory is what is measured)."""
    from factory.distributed.planner import make_plan
    from sharding import wait_for_memory

    results = []
    for strategy in settings["strategies"]:
        overrides = [*settings["overrides"], f"strategy={strategy}", "trainer.devices=2",
                     f"trainer.max_steps={settings['steps']}", "trainer.limit_val_batches=0", "test=false",
                     *NO_CALLBACKS, "plan.check=false", "trainer.precision=32-true"]
        cfg = _compose(overrides)
        dm = _datamodule(overrides)
        plan = make_plan(cfg, dm.input_spec, dm.batch_size)
        planned = plan.budget.need(plan.chosen)
        print(f"  {strategy}: planned {planned / GB:.2f} GB per rank", flush=True)
        wait_for_memory(2 * (planned / GB + 1.0) + 2)
        with tempfile.TemporaryDirectory(prefix="llm-memory-") as tmp:
            code, wall, tail = train([*overrides, "+callbacks.memprobe._target_=memory_probe.MemoryProbe"], tmp, 1200,
                                     MEMPROBE_DIR=f"{tmp}/probe", OMP_NUM_THREADS="1")
            ranks = [json.loads(p.read_text()) for p in sorted(Path(tmp, "probe").glob("rank*.json"))]
        row = {"strategy": strategy, "ranks": 2, "parameters": plan.model.params, "planned_gb": planned / GB,
               "wall_s": round(wall, 1), "batch_size": dm.batch_size, "block_size": dm.block_size,
               "vocab_size": dm.input_spec.vocab_size}
        if code != 0 or len(ranks) != 2:
            row["error"] = tail.strip().splitlines()[-1] if tail.strip() else f"exit {code}"
        else:
            peaks = [max(m["peak"] for m in r["milestones"].values()) / 1e3 for r in ranks]
            baselines = [r["milestones"]["setup"]["rss"] / 1e3 for r in ranks]
            row.update(peak_gb=max(peaks), baseline_gb=max(baselines),
                       ratio=max(peaks) / (planned / GB + max(baselines)))
        shown = row.get("error") or f"peak {row['peak_gb']:.2f} GB, ratio {row['ratio']:.3f}"
        print(f"  {strategy}: {shown}", flush=True)
        results.append(row)
    return results


# --- report -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    from llm_report import machine, render, write

    args = parse_args(argv)
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
    else:
        settings = {part: dict(values) for part, values in (QUICK if args.quick else FULL).items()}
        if args.strategies:
            for part in ("throughput", "memory"):
                settings[part]["strategies"] = args.strategies
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        saved = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
                 "quick": args.quick, "threads": _threads(),
                 "command": "python bench/llm.py" + (" --quick" if args.quick else "")
                 + (f" --threads {args.threads}" if args.threads else ""),
                 "load": [os.getloadavg()[0]], "settings": {p: settings[p] for p in args.parts}}
        began = time.monotonic()
        for part in args.parts:
            print(f"{part} ...", flush=True)
            saved[part] = {"quality": quality, "throughput": throughput, "memory": memory}[part](settings[part])
        saved["load"].append(os.getloadavg()[0])
        saved["wall_s"] = round(time.monotonic() - began)
        out = RESULTS.with_name("llm-quick.json") if args.quick else RESULTS
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(saved, indent=1))
        print(f"raw results: {out.relative_to(REPO)} ({saved['wall_s']} s)")
    text = render(saved)
    print(text)
    if not args.no_write and not saved.get("quick") and set(PARTS) <= set(saved) and not args.strategies:
        write(text)
        print("wrote docs/benchmarks.md (## Language models)")


if __name__ == "__main__":
    main()
