"""DeepSpeed's native ops, built once per machine into a cache that every run reuses.

On CPU, DeepSpeed JIT-compiles a shared-memory communication op at its first
initialization (~60 s here) and, for ZeRO-Offload, its CPU Adam (~85 s). Built inside a
worker they look like a hang; built here, in the launching process, they print what is
happening, and the workers find them cached (torch's extension cache, which
``TORCH_EXTENSIONS_DIR`` relocates).

    python -m factory.distributed.native_ops          # prebuild for this machine
"""
from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from factory.errors import FactoryError

#: op name -> (DeepSpeed builder, what it is for, typical first build here)
OPS = {
    "deepspeed_shm_comm": ("ShareMemCommBuilder", "shared-memory collectives on CPU", "about 60 s"),
    "cpu_adam": ("CPUAdamBuilder", "the optimizer step of ZeRO-Offload", "about 85 s"),
}


class NativeOpError(FactoryError):
    """A DeepSpeed op cannot be built on this machine; the message names the missing piece."""


def extensions_dir() -> Path:
    from torch.utils.cpp_extension import _get_build_directory

    return Path(_get_build_directory("x", verbose=False)).parent


def is_built(name: str) -> bool:
    return any((extensions_dir() / name).glob(f"{name}*.so"))


def missing_toolchain() -> str | None:
    """The first missing build tool, named, or None."""
    for tool, why in (("c++", "a C++ compiler (g++)"), ("ninja", "ninja (pip install ninja)")):
        if shutil.which(tool) is None and not (tool == "ninja" and _ninja_in_env()):
            return why
    return None


def _ninja_in_env() -> bool:
    return (Path(sys.executable).parent / "ninja").exists()


def ensure_built(name: str, announce=None) -> None:
    """Build op ``name`` (a key of ``OPS``) unless cached; say so before a long build.

    Raises:
        NativeOpError: the op cannot be built here (missing compiler or a failed build).
    """
    if is_built(name):
        return
    announce = announce or (lambda message: print(message, file=sys.stderr, flush=True))
    builder_name, purpose, typical = OPS[name]
    missing = missing_toolchain()
    if missing:
        raise NativeOpError(f"DeepSpeed's {name} op ({purpose}) cannot be built: {missing} is missing")
    announce(f"factory: building DeepSpeed's {name} op for {purpose}, once for this machine "
             f"({typical}; cached in {extensions_dir()})")
    start = time.monotonic()
    from deepspeed.ops.op_builder import __dict__ as builders

    try:
        builders[builder_name]().load(verbose=False)
    except Exception as e:  # noqa: BLE001: compiler failures surface as many types
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise NativeOpError(f"DeepSpeed's {name} op ({purpose}) failed to build: {first}") from e
    announce(f"factory: built {name} in {time.monotonic() - start:.0f} s")


def main() -> None:
    for name in OPS:
        ensure_built(name)
        print(f"{name}: ready in {extensions_dir() / name}")


if __name__ == "__main__":
    main()
