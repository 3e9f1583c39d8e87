"""The memory planner: hand-checked arithmetic, meta-device measurement, the fit check."""
from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console

from factory.config import compose
from factory.data.spec import InputSpec
from factory.distributed import memory
from factory.distributed.memory import (GB, LAYOUTS, Budget, Buckets, ModelSize, cheapest_fit, deepspeed_estimate,
                                        estimate, precision_bytes, strategy_layout)
from factory.distributed.planner import check_fits, device_counts, make_plan, measure_model, print_plan
from factory.errors import ConfigError
from factory.models.wide_mlp import wide_mlp_parameters

MB = 1e6
SPEC = InputSpec(n_numeric=10, embed_cardinalities=[30], n_classes=2, task="binary", class_counts=[90, 10])
LAYOUT = {layout.name: layout for layout in LAYOUTS}
# One million parameters, no activations, one-element buckets: every number is a multiple of 1 MB.
MILLION = ModelSize(params=1_000_000, largest_layer=250_000, activations=0)
TINY_BUCKETS = Buckets(reduce=1, prefetch=0, max_live=0)


def _bytes(name: str, world_size: int = 4, precision: str = "32-true") -> tuple[float, ...]:
    e = estimate(MILLION, LAYOUT[name], precision, world_size, TINY_BUCKETS)
    return tuple(round(v / MB, 6) for v in (e.params, e.grads, e.optimizer, e.buffers, e.host))


@pytest.mark.parametrize(("name", "expected"), [
    # (params, grads, optimizer, buffers, host) in MB for 1M fp32 parameters on 4 processes
    ("single", (4, 4, 8, 0, 0)),            # world size is always 1
    ("ddp", (4, 4, 8, 4, 0)),               # the reducer's buckets hold a second copy of the gradients
    ("deepspeed_zero1", (4, 4, 3, 4e-6, 0)),  # (8 Adam + 4 fp32 partition) / 4; one 4-byte bucket
    ("deepspeed_zero2", (4, 1, 3, 4e-6, 0)),
    ("deepspeed_zero2_offload", (4, 0, 0, 4e-6, 4)),  # host: 3 optimizer + 1 fp32 gradient partition
    ("deepspeed_zero3", (1, 1, 2, 1 + 4e-6, 0)),       # gathers the 250k-parameter layer: 1 MB
    ("deepspeed_zero3_offload", (0, 0, 0, 1 + 4e-6, 6)),  # host: 3 + 1 + 1 accumulated grads + 1 MB shard
])
def test_one_million_parameters_on_four_devices_by_hand(name, expected):
    assert _bytes(name) == pytest.approx(expected)


def test_ddp_model_states_are_16_bytes_per_parameter():
    e = estimate(MILLION, LAYOUT["ddp"], "32-true", world_size=4)
    assert e.params + e.grads + e.optimizer == 16 * MB
    assert e.world_size == 4 and estimate(MILLION, LAYOUT["single"], "32-true", 4).world_size == 1


def test_the_optimizer_step_adds_its_temporaries():
    def step(name: str, buckets: Buckets = TINY_BUCKETS) -> float:
        return estimate(MILLION, LAYOUT[name], "32-true", 4, buckets).step / MB

    assert step("ddp") == pytest.approx(2)                  # AdamW's two temporaries of the 250k layer
    assert step("deepspeed_zero2") == pytest.approx(3)      # gradient copy + two temporaries of the partition
    sub_group = Buckets(reduce=1, prefetch=0, max_live=0, sub_group=100_000)
    assert step("deepspeed_zero3", sub_group) == pytest.approx(1.95)  # 100k + a 62.5k shard, x 12 B
    assert step("deepspeed_zero3_offload") == 0              # DeepSpeed's CPU Adam steps in place


def test_mixed_precision_under_deepspeed_keeps_an_fp32_master_copy():
    # 2 B weights, 2 B gradients / 4, (8 B Adam + 4 B master) / 4
    assert _bytes("deepspeed_zero2", precision="bf16-mixed")[:3] == pytest.approx((2, 0.5, 3))
    # torch autocast keeps fp32 weights: the same states as fp32, half the activation bytes
    assert _bytes("ddp", precision="16-mixed")[:3] == pytest.approx((4, 4, 8))
    assert precision_bytes("16-mixed", deepspeed=False).activation == 2
    assert precision_bytes("bf16-true", deepspeed=False).optimizer == 4
    assert precision_bytes("32", deepspeed=True) == precision_bytes("32-true", deepspeed=False)


def test_activations_scale_with_precision_and_do_not_shard():
    model = ModelSize(params=1000, largest_layer=10, activations=8 * MB)
    assert estimate(model, LAYOUT["deepspeed_zero3"], "32-true", 8).activations == 8 * MB
    assert estimate(model, LAYOUT["deepspeed_zero3"], "bf16-mixed", 8).activations == 4 * MB


def test_buckets_come_from_the_strategy_config():
    layout, buckets = strategy_layout(compose("train", ["strategy=deepspeed_zero3"]).strategy)
    assert (layout, buckets) == (LAYOUT["deepspeed_zero3"], Buckets(reduce=1e7, prefetch=5e7, max_live=1e8))
    raw = compose("train", ["strategy=deepspeed_zero2",
                            "+strategy.deepspeed_config={zero_optimization:{reduce_bucket_size:1000}}"]).strategy
    assert strategy_layout(raw)[1].reduce == 1000  # the raw DeepSpeed block wins, as in training
    assert strategy_layout(compose("train", ["strategy=deepspeed_zero2_offload"]).strategy)[0] == \
        LAYOUT["deepspeed_zero2_offload"]
    odd = compose("train", ["strategy=deepspeed_zero3", "strategy.offload_optimizer=true"]).strategy
    assert strategy_layout(odd)[0].name == "deepspeed_zero3+offload_optimizer"
    assert strategy_layout({"_target_": "somebody.else.Strategy"}) is None


def test_a_cpu_budget_counts_offloaded_states_against_the_same_ram():
    e = estimate(MILLION, LAYOUT["deepspeed_zero3_offload"], "32-true", 4, TINY_BUCKETS)
    cpu = Budget(device_total=8 * MB, host_total=8 * MB, shared=True, source="test")
    gpu = Budget(device_total=2 * MB, host_total=6 * MB, shared=False, source="test")
    assert cpu.need(e) == e.device + e.host and cpu.fits(e)
    assert gpu.need(e) == e.device and gpu.fits(e)
    assert not Budget(2 * MB, 4 * MB, shared=False, source="test").fits(e)  # 6 MB offloaded, 4 MB of host
    assert not Budget(8 * MB, 8 * MB, shared=True, source="test", headroom=0.5).fits(e)


def test_the_cheapest_fit_prefers_less_sharding_on_a_near_tie():
    budget = Budget(device_total=GB, host_total=GB, shared=True, source="test")
    zero2 = estimate(MILLION, LAYOUT["deepspeed_zero2"], "32-true", 4, TINY_BUCKETS)      # 8 MB + 3 MB step
    zero3 = estimate(MILLION, LAYOUT["deepspeed_zero3"], "32-true", 4, TINY_BUCKETS)      # 5 MB + 3 MB step
    near = estimate(MILLION, LAYOUT["deepspeed_zero3"], "32-true", 4,
                    Buckets(reduce=1, prefetch=740_000, max_live=1e6))  # 7 MB + 3.96 MB of gathered layers
    assert cheapest_fit([zero2, zero3], budget) is zero3
    assert cheapest_fit([zero2, near], budget) is zero2
    assert cheapest_fit([zero2, zero3], Budget(4 * MB, GB, shared=True, source="test")) is None


def test_device_counts_read_every_form_of_trainer_devices():
    assert device_counts({"devices": 2, "num_nodes": 3}) == (2, 3)
    assert device_counts({"devices": "4"}) == (4, 1)
    assert device_counts({"devices": [0, 1]}) == (2, 1)
    assert device_counts({"devices": "0,1,2"}) == (3, 1)
    assert device_counts({"devices": "auto", "accelerator": "cpu"}) == (1, 1)


def test_meta_parameter_count_equals_the_closed_form():
    for width, depth in ((64, 3), (4096, 10)):
        cfg = compose("train", ["model=mlp_wide", f"model.net.width={width}", f"model.net.depth={depth}"])
        size = measure_model(cfg.model, SPEC, batch_size=32)
        embed_dim = cfg.model.net.embed_dim
        n_inputs = SPEC.n_numeric + embed_dim * len(SPEC.embed_cardinalities)
        embeddings = sum(SPEC.embed_cardinalities) * embed_dim  # wide_mlp_parameters leaves these out
        assert size.params == wide_mlp_parameters(n_inputs, SPEC.n_outputs, width, depth) + embeddings
        assert size.largest_layer == width * width + width  # one hidden Linear
    assert size.params > 150_000_000


def test_activations_count_what_autograd_saves_and_checkpointing_saves_less():
    overrides = ["model=mlp_wide", "model.net.width=256", "model.net.depth=8"]
    plain = measure_model(compose("train", overrides).model, SPEC, batch_size=64)
    checkpointed = measure_model(compose("train", [*overrides, "model.net.activation_checkpointing=true"]).model,
                                 SPEC, batch_size=64)
    doubled = measure_model(compose("train", overrides).model, SPEC, batch_size=128)
    assert plain.activations_measured and plain.activations > 0
    # Each of the 7 blocks saves its LayerNorm's, Linear's and GELU's inputs: 3 x (B, width) fp32;
    # checkpointed, only the block's input.
    assert plain.activations >= 7 * 3 * 64 * 256 * 4
    assert checkpointed.activations < plain.activations / 2
    assert doubled.activations == pytest.approx(2 * plain.activations, rel=0.05)


def _peak_rss() -> int:
    return int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) * 1024


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_planning_a_151m_model_allocates_nothing():
    cfg = compose("train", ["model=mlp_wide", "model.net.width=4096", "model.net.depth=10",
                            "strategy=deepspeed_zero3", "trainer.devices=2"])
    make_plan(cfg, SPEC, batch_size=1024)  # warm up imports
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS to the current RSS
    except OSError:
        pytest.skip("cannot reset the peak RSS here")
    before = _peak_rss()
    plan = make_plan(cfg, SPEC, batch_size=1024)
    assert plan.model.params > 150_000_000
    assert _peak_rss() - before < 100 * MB  # building it for real would take 605 MB of weights alone


def _cfg(*overrides: str, width: int = 512, depth: int = 4):
    return compose("train", ["model=mlp_wide", f"model.net.width={width}", f"model.net.depth={depth}",
                             "trainer.devices=4", *overrides])


def test_check_fits_names_the_cheapest_strategy_that_fits():
    big = {"width": 4096, "depth": 10}  # 151M parameters: ZeRO's fixed buckets no longer dominate
    plan = make_plan(_cfg("strategy=ddp", **big), SPEC)
    ddp, best = plan.chosen, plan.cheapest_fit()
    # ZeRO-1/2 step their whole flat partition (12P/N of temporaries); ZeRO-3 one sub-group.
    assert best.layout.name == "deepspeed_zero3"
    gb = (ddp.device + best.device) / 2 / GB / 0.9  # between the two
    with pytest.raises(ConfigError) as error:
        check_fits(_cfg("strategy=ddp", f"plan.device_memory_gb={gb}", **big), SPEC)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"strategy=ddp needs ~{memory.fmt(ddp.device)} per device, ")
    assert f"(plan.device_memory_gb={gb:g} x plan.headroom=0.9)" in message
    assert f"strategy=deepspeed_zero3 fits at ~{memory.fmt(best.device)}" in message
    assert message.endswith("or set plan.check=false")


def test_check_fits_says_when_nothing_fits_and_can_be_switched_off():
    tiny = ["strategy=deepspeed_zero2", "plan.device_memory_gb=0.001"]
    with pytest.raises(ConfigError, match=r"^strategy=deepspeed_zero2 needs .* no strategy fits on 4 device"):
        check_fits(_cfg(*tiny), SPEC)
    assert check_fits(_cfg(*tiny, "plan.check=false"), SPEC) is None
    assert check_fits(_cfg("strategy=deepspeed_zero2"), SPEC).chosen.layout.name == "deepspeed_zero2"
    with pytest.raises(ConfigError, match=r"^plan.headroom: must be in \(0, 1\]"):
        check_fits(_cfg("strategy=ddp", "plan.headroom=0"), SPEC)


def test_deepspeed_estimates_are_deepspeeds_own_numbers():
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    assert deepspeed_estimate(MILLION, LAYOUT["ddp"], 2, 1) is None
    host, device = estimate_zero2_model_states_mem_needs(MILLION.params, 2, 1, cpu_offload=False)
    assert deepspeed_estimate(MILLION, LAYOUT["deepspeed_zero2"], 2, 1) == (device, host)
    host, device, _ = estimate_zero3_model_states_mem_needs(MILLION.params, MILLION.largest_layer, 2, 1,
                                                            cpu_offload=True, cpu_offload_params=True)
    assert deepspeed_estimate(MILLION, LAYOUT["deepspeed_zero3_offload"], 2, 1) == (device, host)


def test_the_printed_plan_has_a_row_per_strategy_and_deepspeeds_column():
    plan = make_plan(_cfg("strategy=deepspeed_zero3", "plan.device_memory_gb=16"), SPEC)
    out = io.StringIO()
    print_plan(plan, console=Console(file=out, width=200))
    text = out.getvalue()
    for layout in LAYOUTS:
        assert layout.name in text
    assert "* deepspeed_zero3 " in text and "DeepSpeed est." in text
    zero2 = deepspeed_estimate(plan.model, LAYOUT["deepspeed_zero2"], 4, 1)
    assert f"{zero2[0] / 1e6:.2f} | {zero2[1] / 1e6:.2f}" in text  # in MB: this model is small
    assert "strategy=deepspeed_zero3 fits" in text and "cheapest that fits: strategy=" in text
