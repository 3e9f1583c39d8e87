"""factory.models.mfu: peak FLOP/s by device name and precision, and the utilization they give."""
import pytest

from factory.models.mfu import mfu, peak_flops


@pytest.mark.parametrize("name, precision, peak", [
    ("NVIDIA A100-SXM4-80GB", "bf16-mixed", 312e12),
    ("NVIDIA A100-SXM4-40GB", "32-true", 19.5e12),
    ("NVIDIA H100 80GB HBM3", "bf16-mixed", 989e12),
    ("NVIDIA H100 PCIe", "16-mixed", 756e12),  # the PCIe card, not the SXM one its name also contains
    ("NVIDIA L40S", "bf16-true", 362e12),
    ("NVIDIA L4", "bf16-mixed", 121e12),
    ("NVIDIA L40", "bf16-mixed", 181e12),  # not the L4 its name contains
    ("NVIDIA A10G", "bf16-mixed", 70e12),  # not the A10
    ("NVIDIA H100 NVL", "bf16-mixed", 835e12),
    ("Tesla V100-SXM2-16GB", "16-mixed", 125e12),
    ("NVIDIA GeForce GTX 1080", "bf16-mixed", None),
])
def test_peak_by_device_and_precision(name, precision, peak):
    assert peak_flops(name, precision) == peak


def test_mfu_of_nanogpt_124m_on_an_a100():
    """GPT-2 124M at block 1024 is ~8.6e8 training FLOPs per token: 100k tokens/s is ~0.27 of 312 TFLOP/s."""
    n, layers, width, block = 123_689_472, 12, 768, 1024  # without the position table
    per_token = 6 * n + 12 * layers * width * block
    assert mfu(100_000, per_token, 312e12) == pytest.approx(100_000 * per_token / 312e12)
    assert 0.2 < mfu(100_000, per_token, 312e12) < 0.3
