"""The planner for language models: GPT parameter and activation arithmetic held to the real
module, and the per-strategy plan of GPT presets from their configs alone."""
from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf, open_dict
from torch.nn import functional as F

from factory.config import compose
from factory.distributed.memory import GB
from factory.distributed.planner import check_fits, make_plan, measure_model
from factory.distributed.transformer import GPTShape, config_spec, gpt_shape, is_language_model
from factory.errors import ConfigError
from factory.models.gpt import GPT

SPEC = {"task": "language_modeling", "vocab_size": 500, "block_size": 32}


def test_gpt2_small_has_nanogpts_parameter_count():
    # 50257 x 768 tokens + 1024 x 768 positions + 12 x 7,087,872 per block + 1,536 final norm
    assert GPTShape(12, 12, 768, 1024, 50257, bias=True).parameters() == 124_439_808
    assert GPTShape(12, 12, 768, 1024, 50304, bias=True).parameters() == 124_475_904  # + 47 x 768
    assert GPTShape(12, 12, 768, 1024, 50257, bias=True).largest_layer() == 50257 * 768  # the tied embedding


@pytest.mark.parametrize(("bias", "positions"), [(False, "learned"), (True, "learned"), (False, "rotary")])
def test_the_parameter_count_is_the_modules(bias, positions):
    shape = GPTShape(3, 4, 64, 32, 500, bias=bias, positions=positions)
    net = GPT(SPEC, n_layer=3, n_head=4, n_embd=64, bias=bias, positions=positions)
    assert shape.parameters() == net.num_parameters() == sum(p.numel() for p in net.parameters())


def _saved_bytes(net: torch.nn.Module, batch: int) -> int:
    """What one training forward and loss save for backward, by storage, plus the planner's two
    largest tensors for backward's gradients (as the planner adds for every model)."""
    weights = {p.untyped_storage()._cdata for p in net.parameters()}
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage._cdata not in weights:
            saved[storage._cdata] = storage.nbytes()
        return tensor

    idx = torch.randint(0, SPEC["vocab_size"], (batch, SPEC["block_size"]))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        logits = net.train()(idx)
        F.cross_entropy(logits.view(-1, SPEC["vocab_size"]), idx.view(-1))
    return sum(saved.values()) + 2 * max(saved.values())


@pytest.mark.parametrize(("positions", "dropout"), [("learned", 0.0), ("learned", 0.1), ("rotary", 0.0)])
def test_activation_bytes_are_what_autograd_saves_on_cpu(positions, dropout):
    torch.manual_seed(0)
    net = GPT(SPEC, n_layer=3, n_head=4, n_embd=64, dropout=dropout, positions=positions)
    shape = GPTShape(3, 4, 64, 32, 500, positions=positions, dropout=dropout)
    # dropout > 0 on CPU runs the attention's math path: (T, T) probabilities per head
    planned = shape.activation_bytes(4, fused_attention=dropout == 0)
    assert planned == pytest.approx(_saved_bytes(net, 4), rel=0.01)


def test_checkpointing_keeps_block_inputs_and_one_recomputed_block():
    net = GPT(SPEC, n_layer=3, n_head=4, n_embd=64, activation_checkpointing=True)
    shape = GPTShape(3, 4, 64, 32, 500, activation_checkpointing=True)
    # Autograd's hooks see the kept block inputs, not the block recomputed during backward.
    recomputed = 4 * 4 * 32 * shape.block_elements_per_token(fused_attention=True)
    assert shape.activation_bytes(4, True) == pytest.approx(_saved_bytes(net, 4) + recomputed, rel=0.01)
    plain = GPTShape(3, 4, 64, 32, 500)
    assert shape.activation_bytes(4, True) < plain.activation_bytes(4, True)


def _lm_cfg(*overrides: str, n_layer: int, n_head: int, n_embd: int, block: int, vocab: int, batch: int,
            checkpointing: bool = False):
    """A train config whose model is a GPT and whose data names a block and a vocabulary (no corpus)."""
    cfg = compose("train", list(overrides))
    with open_dict(cfg):
        cfg.model = OmegaConf.create({"_target_": "factory.models.LanguageModel", "net": {
            "_target_": "factory.models.GPT", "n_layer": n_layer, "n_head": n_head, "n_embd": n_embd,
            "dropout": 0.0, "bias": False, "positions": "learned", "activation_checkpointing": checkpointing}})
        cfg.data = OmegaConf.create({"block_size": block, "batch_size": batch, "tokenizer": {"vocab_size": vocab}})
    return cfg


GPU8 = ("trainer.accelerator=gpu", "trainer.devices=8", "trainer.precision=bf16-mixed", "plan.device_memory_gb=80")
SEVEN_B = {"n_layer": 32, "n_head": 32, "n_embd": 4096, "block": 2048, "vocab": 32000, "batch": 8}


def test_config_spec_reads_block_and_vocabulary_from_the_data_config():
    cfg = _lm_cfg(n_layer=2, n_head=2, n_embd=32, block=64, vocab=300, batch=4)
    spec = config_spec(cfg.data)
    assert spec == {"task": "language_modeling", "block_size": 64, "vocab_size": 300} and is_language_model(spec)
    assert config_spec(compose("train", []).data) is None  # a table: planned from its data
    assert gpt_shape(cfg.model.net, spec) == GPTShape(2, 2, 32, 64, 300)


def test_zero3_needs_less_per_device_than_zero1_than_ddp():
    # GPT-2 350M
    cfg = _lm_cfg(*GPU8, "strategy=ddp", n_layer=24, n_head=16, n_embd=1024, block=1024, vocab=50304, batch=8)
    plan = make_plan(cfg, config_spec(cfg.data))
    need = {e.layout.name: plan.budget.need(e) for e in plan.estimates}
    assert need["deepspeed_zero3"] < need["deepspeed_zero1"] < need["ddp"]
    assert plan.model.params == GPTShape(24, 16, 1024, 1024, 50304).parameters()


def test_a_7b_model_on_eight_80gb_gpus_fits_with_zero3_not_ddp():
    # P = 6.58B. DDP under bf16 autocast keeps fp32 weights, gradients and Adam's two moments
    # (16 B per parameter, 105 GB) and its gradient buckets (4 B, 26 GB): 131 GB > 72 GB usable.
    # ZeRO-3 shards 2 B weights, 2 B gradients and 12 B of fp32 master and moments over 8 GPUs:
    # 2 B per parameter (13 GB), plus ~13 GB of checkpointed activations for 16k tokens (bf16; the loss in fp32).
    cfg = _lm_cfg(*GPU8, "strategy=deepspeed_zero3", **SEVEN_B, checkpointing=True)
    plan = make_plan(cfg, config_spec(cfg.data))
    by_name = {e.layout.name: e for e in plan.estimates}
    ddp, zero3 = by_name["ddp"], by_name["deepspeed_zero3"]
    assert plan.model.params == pytest.approx(6.59e9, rel=0.01)
    assert ddp.params + ddp.grads + ddp.optimizer == 16 * plan.model.params
    assert not plan.budget.fits(ddp) and plan.budget.need(ddp) > 120 * GB
    assert zero3.params + zero3.grads + zero3.optimizer == pytest.approx(2 * plan.model.params)
    assert plan.budget.fits(zero3) and plan.budget.need(zero3) < 40 * GB
    assert check_fits(cfg, config_spec(cfg.data)).chosen == zero3
    with pytest.raises(ConfigError, match=r"^strategy=ddp needs ~1\d\d\.\d\d GB per device, 72.00 GB usable .*; "
                                          r"strategy=deepspeed_zero3 fits at ~2\d\.\d\d GB"):
        check_fits(_lm_cfg(*GPU8, "strategy=ddp", **SEVEN_B, checkpointing=True), config_spec(cfg.data))


def test_without_checkpointing_the_7b_activations_fit_nowhere():
    cfg = _lm_cfg(*GPU8, "strategy=deepspeed_zero3", **SEVEN_B)
    plan = make_plan(cfg, config_spec(cfg.data))
    assert plan.model.activations / 2 > 72 * GB  # bf16: half the fp32 bytes
    assert plan.cheapest_fit() is None


def test_language_model_activations_follow_the_device():
    # CPU with dropout: the math path keeps (T, T) per head; CUDA's kernels do not
    net = OmegaConf.create({"n_layer": 2, "n_head": 4, "n_embd": 64, "dropout": 0.1})
    spec = {"task": "language_modeling", "vocab_size": 500, "block_size": 256}
    assert measure_model(OmegaConf.create({"net": net}), spec, 4).activations > \
        1.5 * measure_model(OmegaConf.create({"net": net}), spec, 4, cuda=True).activations


def test_the_7b_preset_plans_from_its_config_alone():
    cfg = compose("train", ["experiment=gpt_7b"])  # its corpus is never read: the spec is the config's
    plan = make_plan(cfg, config_spec(cfg.data))
    fits = {e.layout.name: plan.budget.fits(e) for e in plan.estimates}
    assert plan.model.params == pytest.approx(6.57e9, rel=0.01) and plan.world_size == 8
    assert not fits["ddp"] and fits["deepspeed_zero3"] and plan.chosen.layout.name == "deepspeed_zero3"


def test_a_tokenizer_file_gives_the_vocabulary(tmp_path):
    from factory.data.text.tokenizer import train_bpe

    tokenizer = train_bpe(["def f(x):\n    return x + 1\n"] * 20, vocab_size=300)
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    path = str(tmp_path / "tokenizer.json")
    data = OmegaConf.create({"block_size": 64, "tokenizer": {"vocab_size": 50304, "path": path}})
    assert config_spec(data)["vocab_size"] == tokenizer.get_vocab_size(with_added_tokens=True) < 50304


def test_offload_is_planned_against_the_host_memory_named():
    cfg = _lm_cfg(*GPU8, "strategy=deepspeed_zero3_offload", **SEVEN_B, checkpointing=True)
    spec = config_spec(cfg.data)
    small = _lm_cfg(*GPU8, "strategy=deepspeed_zero3_offload", "plan.host_memory_gb=64", **SEVEN_B, checkpointing=True)
    big = _lm_cfg(*GPU8, "strategy=deepspeed_zero3_offload", "plan.host_memory_gb=1000", **SEVEN_B, checkpointing=True)
    # 16 GB per process offloaded (fp32 master and moments, gradients, the parameter shard): 8 x 16 GB > 64 x 0.9
    assert make_plan(cfg, spec).chosen.host > 15 * GB
    assert not make_plan(small, spec).budget.fits(make_plan(small, spec).chosen)
    assert make_plan(big, spec).budget.fits(make_plan(big, spec).chosen)


def test_in_16_bits_the_loss_keeps_fp32_vocabulary_tensors():
    shape = GPTShape(2, 4, 64, 32, 500)
    # log-probs and the two gradients backward holds, (B, T, V) each, counted twice before the planner halves them
    extra = shape.activation_bytes(4, True, half=True) - shape.activation_bytes(4, True)
    assert extra == 4 * 4 * 32 * 3 * 500
