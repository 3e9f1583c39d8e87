"""Language models in the registry: the tokenizer kept beside the checkpoint, text in and out.

A run whose model is ``factory.models.LanguageModel`` registers as ``kind: language_model``:
the version folder holds ``model.ckpt`` (consolidated when ZeRO-sharded, as every model) and
``tokenizer.json`` (the run's byte-level BPE, the same text the checkpoint carries), and
``meta.json`` adds a ``language_model`` section (vocabulary and block size, the tokenizer's
hash, parameters, val perplexity) and the tokenizer file's sha256. Nothing tabular is made
for it: no ONNX export (a graph of raw feature columns), no reference profile.

``load`` checks the checkpoint's and the tokenizer's sha256 and returns a
``RegisteredLanguageModel``: ``generate_text`` / ``stream_text`` delegate to
``factory.models.LanguageModel`` (seeded sampling is reproducible).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Iterator

from factory import files
from factory.errors import FactoryError
from factory.registry.store import ModelVersion
from factory.rundir.layout import TOKENIZER  # a version keeps its run's tokenizer under the run's file name

KIND = "language_model"
TASK = "language_modeling"  # the spec's task (factory.data.text.TextSpec)
MODEL_TARGET = "factory.models.LanguageModel"


def is_language_model(config: dict | None) -> bool:
    """Whether a run's resolved config trained a language model (read from the config: no torch)."""
    model = (config or {}).get("model") or {}
    return isinstance(model, dict) and model.get("_target_") == MODEL_TARGET


def kind(metadata: dict) -> str:
    """A version's kind from its ``meta.json``: ``language_model``, else ``tabular`` (every older version)."""
    return metadata.get("kind") or "tabular"


def describe(run_id: str, run_dir: Path, checkpoint: Path, staged: Path, metrics: dict) -> dict:
    """Write ``tokenizer.json`` into ``staged`` and return ``meta.json``'s language-model fields.

    The tokenizer is the checkpoint's own (``checkpoint["tokenizer"]``; the run directory's
    ``tokenizer.json`` for a checkpoint without one), checked against the hash its spec records.

    Raises:
        FactoryError: a checkpoint without a language-model spec or a tokenizer, or a
            tokenizer whose hash differs from the spec's.
    """
    import torch

    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=False, mmap=True)
    except Exception as e:  # noqa: BLE001: torch raises many types for a non-checkpoint
        raise FactoryError(f"run {run_id}: {checkpoint} is not a readable checkpoint ({type(e).__name__})") from e
    spec = (state.get("hyper_parameters") or {}).get("spec") or {}
    if spec.get("task") != TASK:
        raise FactoryError(f"run {run_id}: its config trains {MODEL_TARGET} but the checkpoint's spec has task "
                           f"{spec.get('task')!r}, not {TASK!r}")
    text = state.get("tokenizer")
    if not text and (run_dir / TOKENIZER).is_file():
        text = (run_dir / TOKENIZER).read_text(encoding="utf-8")
    if not text:
        raise FactoryError(f"run {run_id}: its checkpoint holds no tokenizer (checkpoint['tokenizer']) and the "
                           f"run directory no {TOKENIZER}; a language model cannot generate without it")
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if spec.get("tokenizer_hash") and spec["tokenizer_hash"] != digest:
        raise FactoryError(f"run {run_id}: the tokenizer in {checkpoint.name} is not the one it was trained with "
                           f"(sha256 {digest[:12]}, its spec says {str(spec['tokenizer_hash'])[:12]})")
    files.write_text(staged / TOKENIZER, text)
    tensors = {(v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape)): v.numel()
               for v in (state.get("state_dict") or {}).values() if isinstance(v, torch.Tensor)}
    parameters = sum(tensors.values())  # the head tied to the token embedding shares its storage: counted once
    return {
        "kind": KIND,
        "language_model": {"vocab_size": spec.get("vocab_size"), "block_size": spec.get("block_size"),
                           "eos_id": spec.get("eos_id"), "tokenizer_hash": digest, "parameters": parameters,
                           "val_perplexity": metrics.get("val/perplexity"),
                           "test_perplexity": metrics.get("test/perplexity")},
        "tokenizer": {"file": TOKENIZER, "sha256": digest, "bytes": (staged / TOKENIZER).stat().st_size},
    }


def checked_tokenizer(version: ModelVersion, metadata: dict, verify: bool = True) -> str:
    """The version's ``tokenizer.json`` text, its sha256 checked against ``meta.json``.

    Raises:
        FactoryError: the file is missing or altered.
    """
    path = version.path / TOKENIZER
    if not path.is_file():
        raise FactoryError(f"{version.ref}: tokenizer {path} is missing")
    data = path.read_bytes()
    expected = (metadata.get("tokenizer") or {}).get("sha256")
    if verify and expected and hashlib.sha256(data).hexdigest() != expected:
        raise FactoryError(f"{version.ref}: tokenizer {path} changed since it was registered (sha256 mismatch)")
    return data.decode("utf-8")


def refuse_backend(version: ModelVersion, backend: str) -> FactoryError:
    return FactoryError(f"{version.ref} is a language model: backend={backend!r} applies to tabular models "
                        "(an ONNX graph of feature columns); load it with backend='torch'")


class RegisteredLanguageModel:
    """What ``factory.registry.load`` returns for a language model.

    Attributes:
        name, version, stage, ref: the registry's entry (``version`` the number); ``entry`` the
            ``ModelVersion``.
        kind: ``"language_model"``; ``backend``: ``"torch"``.
        metadata: ``meta.json``; ``model``: the ``LanguageModel`` in eval mode on the CPU.
        tokenizer_json: the tokenizer (checked against ``tokenizer.json``'s sha256 and the checkpoint's).

    Example:
        >>> lm = factory.registry.load("gpt_small@production")
        >>> lm.generate_text("def main(", max_new_tokens=40, temperature=0.8, top_k=40, seed=1)
        >>> for piece in lm.stream_text("import ", max_new_tokens=20): print(piece, end="")
    """

    kind = KIND
    backend = "torch"
    onnx = None  # no exported graph (the server's tabular path reads this)

    def __init__(self, entry: ModelVersion, metadata: dict, model: Any, tokenizer_json: str):
        self.entry, self.metadata, self.model, self.tokenizer_json = entry, metadata, model, tokenizer_json
        self.name, self.version, self.stage = entry.name, entry.version, entry.stage

    def __repr__(self) -> str:
        return f"RegisteredLanguageModel({self.ref}, stage={self.stage})"

    @property
    def ref(self) -> str:
        return self.entry.ref

    @property
    def task(self) -> str:
        return TASK

    @property
    def vocab_size(self) -> int | None:
        return (self.metadata.get("language_model") or {}).get("vocab_size")

    @property
    def block_size(self) -> int | None:
        return (self.metadata.get("language_model") or {}).get("block_size")

    @property
    def config(self):
        """The run's resolved config, as a DictConfig."""
        from omegaconf import OmegaConf

        return OmegaConf.create(self.metadata.get("config") or {})

    def generate_text(self, prompt: str, max_new_tokens: int = 64, temperature: float = 1.0,
                      top_k: int | None = None, seed: int | None = None) -> str:
        """The text the model writes after ``prompt`` (``LanguageModel.generate_text``; seeded: reproducible)."""
        return self.model.generate_text(prompt, max_new_tokens=max_new_tokens, temperature=temperature,
                                        top_k=top_k, seed=seed)

    def stream_text(self, prompt: str, max_new_tokens: int = 64, temperature: float = 1.0,
                    top_k: int | None = None, seed: int | None = None) -> Iterator[str]:
        """The same text piece by piece, as it is sampled (``LanguageModel.stream_text``)."""
        return self.model.stream_text(prompt, max_new_tokens=max_new_tokens, temperature=temperature,
                                      top_k=top_k, seed=seed)

    def predict(self, *args, **kwargs):
        raise FactoryError(f"{self.ref} is a language model: it scores no rows; generate text with "
                           f".generate_text(prompt) (or scripts/generate.py model={self.ref})")


def load(version: ModelVersion, metadata: dict, checkpoint: Path, verify: bool = True) -> RegisteredLanguageModel:
    """The language model of ``version`` (``checkpoint`` already sha256-checked), its tokenizer checked.

    Raises:
        FactoryError: ``tokenizer.json`` missing or altered, or not the checkpoint's tokenizer.
    """
    from factory.models import load_model

    text = checked_tokenizer(version, metadata, verify)
    model = load_model(checkpoint, map_location="cpu")
    held = getattr(model, "tokenizer_json", None)
    if held and held != text:
        raise FactoryError(f"{version.ref}: {TOKENIZER} is not the tokenizer its checkpoint holds "
                           "(registered from another run?)")
    return RegisteredLanguageModel(version, metadata, model, text)
