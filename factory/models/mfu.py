"""Model FLOPs utilization: achieved model FLOPs per second over the device's peak.

Peaks are the vendors' dense (no sparsity) figures per GPU, by the name CUDA reports.
``model.peak_flops`` overrides them for a device not listed here.
"""
from __future__ import annotations

# (name fragment, bf16/fp16 tensor-core peak, fp32 peak without TF32). The first fragment found
# in the device's name wins: longer, more specific names come first.
PEAK_FLOPS: tuple[tuple[str, float, float], ...] = (
    ("H200", 989e12, 67e12),
    ("H100 PCIe", 756e12, 51e12),
    ("H100 NVL", 835e12, 60e12),
    ("H100", 989e12, 67e12),  # SXM
    ("A100", 312e12, 19.5e12),
    ("L40S", 362e12, 91.6e12),
    ("L40", 181e12, 90.5e12),  # before "L4", which its name contains
    ("L4", 121e12, 30.3e12),
    ("A10G", 70e12, 31.2e12),  # AWS's A10 at lower clocks; before "A10"
    ("A10", 125e12, 31.2e12),
    ("V100", 125e12, 15.7e12),  # fp16 (no bf16)
    ("RTX 4090", 165e12, 82.6e12),
    ("RTX 3090", 71e12, 35.6e12),
    ("T4", 65e12, 8.1e12),
)


def peak_flops(device_name: str, precision: str) -> float | None:
    """The peak FLOP/s of ``device_name`` at Lightning's ``precision`` (``bf16-mixed``, ``32-true``, ...),
    or ``None`` for a device not in ``PEAK_FLOPS``."""
    half = any(str(precision).startswith(p) for p in ("bf16", "16"))
    for fragment, half_peak, fp32_peak in PEAK_FLOPS:
        if fragment in device_name:
            return half_peak if half else fp32_peak
    return None


def mfu(tokens_per_s: float, flops_per_token: float, peak: float) -> float:
    """Share of ``peak`` the training achieves: ``tokens_per_s * flops_per_token / peak`` (one device's)."""
    return tokens_per_s * flops_per_token / peak
