"""``data=text``: a corpus split by document, BPE-tokenized once into cached token files, served as windows."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
from torch.utils.data import DataLoader

from factory.config.ranges import check_argument
from factory.config.rules import split_sum_problem
from factory.config.schemas import TextDataModuleConf, TextSourceConf, TextTokenizerConf
from factory.data.text import tokenizer as bpe
from factory.data.text.corpus import SOURCE_DEFAULTS, Corpus, document_bytes, file_corpus
from factory.data.text.spec import TextSpec
from factory.data.text.split import SPLITS, split_documents
from factory.data.text.tokenizer import TOKENIZER_DEFAULTS
from factory.data.text.tokens import cache_key, cached_tokens, open_tokens
from factory.data.text.windows import EvalWindows, RandomWindows, window_loader
from factory.errors import ConfigError, DataError

log = logging.getLogger(__name__)

#: Windows per batch for ``batch_size=None``: nanoGPT's CPU-sized batch; larger fills a GPU better.
AUTO_BATCH_SIZE = 32


class TextDataModule(pl.LightningDataModule):
    """Text split by document, tokenized into memory-mapped token files, served as ``(x, y)`` windows.

    Batches are ``(x, y)``: int64 ``(B, block_size)`` token ids, ``y`` being ``x`` shifted by one
    token. Training windows are drawn at random each epoch, disjoint per rank; val and test
    windows are fixed (``factory.data.text.windows``).

    ``setup`` reads the corpus (``source.path``, or the embedded standard-library corpus),
    fingerprints it, trains a byte-level BPE tokenizer on the train documents (or reads
    ``tokenizer.path``) and tokenizes each split once; both are cached under ``cache_dir``
    by the corpus fingerprint and tokenizer hash, so a second run only hashes the files.

    The tokenizer is the module's state: ``state_dict()`` holds its JSON, and a DataModule
    given it with ``load_state_dict`` before ``setup`` tokenizes with it instead of training
    one (a checkpoint tested on other text reads it as the model learned it).

    Args:
        source: ``{path, text_field, document_separator, max_bytes}`` (``corpus.SOURCE_DEFAULTS``).
        tokenizer: ``{vocab_size, path, eos_token}`` (``tokenizer.TOKENIZER_DEFAULTS``).
        block_size: tokens of context per window.
        batch_size: windows per batch and process; None: ``AUTO_BATCH_SIZE``.
        num_workers: DataLoader worker processes (the batches come from a memory map: 0 is fine).
        val_fraction, test_fraction: shares of the text (by bytes, whole documents) per split.
        split_seed: the document shuffle, and with the epoch, the training windows' draws.
        windows_per_epoch: training windows per epoch over all ranks; None: train tokens // block_size.
        eval_windows: at most this many val (and test) windows; None: every stride of the split.
        cache_dir: where tokenizers and token files are cached; None: ``$FACTORY_ROOT/data/text-cache``.

    Example:
        >>> dm = TextDataModule({"path": "corpus/"}, {"vocab_size": 4096}, block_size=256)
        >>> dm.setup("fit")
        >>> x, y = next(iter(dm.train_dataloader()))  # (32, 256) each
    """

    def __init__(
        self,
        source: dict | None = None,
        tokenizer: dict | None = None,
        block_size: int = 256,
        batch_size: int | None = None,
        num_workers: int = 0,
        val_fraction: float = 0.05,
        test_fraction: float = 0.05,
        split_seed: int = 42,
        windows_per_epoch: int | None = None,
        eval_windows: int | None = 256,
        cache_dir: str | None = None,
    ):
        super().__init__()
        self.source_settings = _settings(source, SOURCE_DEFAULTS, TextSourceConf, "data.source")
        self.tokenizer_settings = _settings(tokenizer, TOKENIZER_DEFAULTS, TextTokenizerConf, "data.tokenizer")
        for name, value in (("block_size", block_size), ("batch_size", batch_size), ("num_workers", num_workers),
                            ("val_fraction", val_fraction), ("test_fraction", test_fraction),
                            ("split_seed", split_seed), ("windows_per_epoch", windows_per_epoch),
                            ("eval_windows", eval_windows)):
            check_argument(TextDataModuleConf, name, value, f"data.{name}", ConfigError)  # as a config is checked
        problem = split_sum_problem(val_fraction, test_fraction)
        if problem:
            raise ConfigError(problem)
        self.block_size, self.batch_size, self.num_workers = block_size, batch_size, num_workers
        self.val_fraction, self.test_fraction, self.split_seed = val_fraction, test_fraction, split_seed
        self.windows_per_epoch, self.eval_windows = windows_per_epoch, eval_windows
        self.cache_dir = Path(cache_dir) if cache_dir else Path(os.environ.get("FACTORY_ROOT", ".")) / "data" / \
            "text-cache"  # as conf/paths' data_dir
        self.input_spec: TextSpec | None = None
        self.tokenizer_json: str | None = None
        self.fingerprint: str | None = None
        self.source_name: str = "text"
        self.split_sizes: dict[str, int] = {}
        self.documents: dict[str, int] = {}  # documents per split
        self.cache: dict[str, str] = {}  # what setup found cached: {"tokenizer": ..., "tokens": ...}
        self._restored: dict | None = None  # a checkpoint's state, given before setup
        self._tokens: dict[str, np.ndarray] = {}

    # --- setup ------------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        """Read and fingerprint the corpus; train or load the tokenizer; tokenize each split (or find it cached).

        Raises:
            DataError: no text at ``source.path``, a bad JSONL line, an empty corpus, or a split
                with fewer than ``block_size + 1`` tokens.
            ConfigError: a ``tokenizer.path`` that is missing or not a tokenizer, or one
                without ``tokenizer.eos_token``.
        """
        if self._tokens:
            return  # "fit" then "test": one setup serves all stages
        began = time.perf_counter()
        corpus = self._corpus()
        self.fingerprint, self.source_name = corpus.fingerprint, corpus.name
        split = {"val_fraction": self.val_fraction, "test_fraction": self.test_fraction, "split_seed": self.split_seed}
        by_split = _SplitDocuments(corpus, split, self.source_settings)
        self.tokenizer_json, self.cache["tokenizer"] = self._tokenizer(corpus, split, by_split)
        tokenizer = bpe.from_json(self.tokenizer_json)
        where = self.tokenizer_settings["path"] or "the trained tokenizer"
        eos = bpe.eos_id(tokenizer, self.tokenizer_settings["eos_token"], where)
        vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
        token_hash = bpe.tokenizer_hash(self.tokenizer_json)
        directory = self.cache_dir / "tokens" / cache_key(corpus.fingerprint, token_hash, {**split, "eos_id": eos})
        record = {"source": corpus.name, "fingerprint": corpus.fingerprint, "tokenizer_hash": token_hash, **split}
        meta, built = cached_tokens(directory, by_split, self.tokenizer_json, eos, vocab_size, record)
        self.cache["tokens"] = "built" if built else "cached"
        self.split_sizes = {name: int(meta["tokens"][name]) for name in SPLITS}
        self.documents = {name: int(meta["documents"][name]) for name in SPLITS}
        self._check_sizes()
        self._tokens = {name: open_tokens(directory / f"{name}.bin", meta["dtype"]) for name in SPLITS}
        self.input_spec = TextSpec(vocab_size=vocab_size, block_size=self.block_size, tokenizer_hash=token_hash,
                                   eos_id=eos)
        if self.batch_size is None:
            self.batch_size = AUTO_BATCH_SIZE
        log.info("text: %s (fingerprint %s), tokens train %d / val %d / test %d from %d documents, vocabulary %d, "
                 "tokenizer %s, token files %s, %.1f s", corpus.name, corpus.fingerprint[:12],
                 *(self.split_sizes[s] for s in SPLITS), sum(self.documents.values()), vocab_size,
                 self.cache["tokenizer"], self.cache["tokens"], time.perf_counter() - began)
        if self._restored is not None:
            self._check_restored()

    def _corpus(self) -> Corpus:
        settings = self.source_settings
        if settings["path"] is None:
            from factory.data.text.embedded import embedded_corpus

            return embedded_corpus(settings["max_bytes"])
        return file_corpus(str(settings["path"]), settings["text_field"], settings["document_separator"],
                           settings["max_bytes"])

    def _tokenizer(self, corpus: Corpus, split: dict, by_split: "_SplitDocuments") -> tuple[str, str]:
        """``(json, how)``: a checkpoint's (restored), the file's, or a BPE trained on the train documents (cached)."""
        if self._restored is not None:
            return self._restored["tokenizer"], "restored"
        settings = self.tokenizer_settings
        if settings["path"] is not None:
            return bpe.read_file(str(settings["path"])), "file"
        identity = {"fingerprint": corpus.fingerprint, **split, "vocab_size": settings["vocab_size"],
                    "eos_token": settings["eos_token"], "tokenizers": _tokenizers_version()}
        key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]
        text, trained = bpe.cached_bpe(self.cache_dir / "tokenizers", key, lambda: by_split()["train"],
                                       int(settings["vocab_size"]), settings["eos_token"])
        return text, "trained" if trained else "cached"

    def _check_sizes(self) -> None:
        need = self.block_size + 1
        fractions = {"train": 1.0, "val": self.val_fraction, "test": self.test_fraction}
        for name in SPLITS:
            if fractions[name] > 0 and self.split_sizes[name] < need:
                sizes = ", ".join(f"{s} {self.split_sizes[s]}" for s in SPLITS)
                hint = "" if name == "train" else f", a larger data.{name}_fraction"
                single = " (each .txt file is one document: data.source.document_separator cuts it)" \
                    if self.documents[name] <= 1 and self.source_settings["path"] else ""
                raise DataError(f"data.block_size: the {name} split has {self.split_sizes[name]} tokens, fewer than "
                                f"block_size + 1 = {need} (tokens: {sizes}; documents: {sum(self.documents.values())})"
                                f"{single}; give more text{hint} or a smaller data.block_size")

    # --- what the recipe and baselines read --------------------------------------

    def tokens(self, split: str) -> np.ndarray:
        """The token ids of ``split`` (``train``, ``val`` or ``test``): a read-only memory map."""
        if not self._tokens:
            raise RuntimeError("TextDataModule.setup() has not run yet")
        if split not in self._tokens:
            raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        return self._tokens[split]

    @property
    def tokenizer_hash(self) -> str | None:
        """sha256 hex of ``tokenizer_json`` (set by ``setup``)."""
        return self.input_spec.tokenizer_hash if self.input_spec else None

    # --- loaders ------------------------------------------------------------------

    def train_dataloader(self) -> DataLoader:
        from factory.data.batches import data_position

        # A resumed fit builds (and prefetches from) this loader before it sets the sampler's
        # epoch: start at the restored epoch and batch, so the windows continue where they stopped.
        epoch, done = data_position(self.trainer)
        rank, world = self._place()
        n = self.split_sizes["train"]
        per_epoch = self.windows_per_epoch or max(n // self.block_size, 1)
        if per_epoch < world:
            raise ConfigError(f"data.windows_per_epoch: {per_epoch} windows cannot be dealt to {world} processes")
        sampler = RandomWindows(n, self.block_size, self._batch(), per_epoch, self.split_seed, rank, world)
        return window_loader(self.tokens("train"), self.block_size, sampler, self.num_workers, epoch, done)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def _eval_loader(self, split: str) -> DataLoader:
        if getattr(self, f"{split}_fraction") == 0:
            raise DataError(f"data.{split}_fraction is 0: there is no {split} split to read")
        rank, world = self._place()
        n = self.split_sizes[split]
        try:
            sampler = EvalWindows(n, self.block_size, self._batch(), self.eval_windows, rank, world)
        except ValueError as e:  # fewer windows than processes: ranks would step unequally
            raise DataError(f"data.block_size: the {split} split ({e}); give more text, a larger "
                            f"data.{split}_fraction or a smaller data.block_size") from None
        return window_loader(self.tokens(split), self.block_size, sampler, self.num_workers)

    def _batch(self) -> int:
        if self.batch_size is None:
            raise RuntimeError("TextDataModule.setup() has not run yet")
        return int(self.batch_size)

    def _place(self) -> tuple[int, int]:
        """``(rank, world size)`` of this process in the fit (``(0, 1)`` outside a Trainer)."""
        trainer = self.trainer
        return (int(trainer.global_rank), int(trainer.world_size)) if trainer is not None else (0, 1)

    # --- state ----------------------------------------------------------------------

    def state_dict(self) -> dict:
        """``{"tokenizer": json, "tokenizer_hash": ..., "fingerprint": ...}`` once set up, else ``{}``."""
        if self.tokenizer_json is None:
            return {}
        return {"tokenizer": self.tokenizer_json, "tokenizer_hash": self.tokenizer_hash,
                "fingerprint": self.fingerprint}

    def load_state_dict(self, state_dict: dict) -> None:
        """Adopt a checkpoint's tokenizer (before ``setup``), or check it is this one's (after).

        Raises:
            DataError: after ``setup``, the checkpoint's tokenizer is another (a run resumed
                with another corpus, split or vocabulary).
        """
        if not state_dict:
            return
        self._restored = dict(state_dict)
        if self._tokens:
            self._check_restored()

    def _check_restored(self) -> None:
        theirs = self._restored.get("tokenizer_hash")
        if theirs and theirs != self.tokenizer_hash:
            raise DataError(f"data: the checkpoint's tokenizer ({theirs[:12]}) is not this data's "
                            f"({(self.tokenizer_hash or '')[:12]}): the corpus, split or data.tokenizer changed "
                            "since it was written; resume with the run's own data settings")


class _SplitDocuments:
    """Each split's documents, read and split on the first call only (a cached run never reads them)."""

    def __init__(self, corpus: Corpus, split: dict, source: dict):
        self.corpus, self.split, self.source = corpus, split, source
        self._by_split: dict[str, list[str]] | None = None

    def __call__(self) -> dict[str, list[str]]:
        if self._by_split is None:
            documents = self.corpus.read()
            if not documents:
                raise DataError(_empty(self.source))
            rows = split_documents(document_bytes(documents), self.split["val_fraction"],
                                   self.split["test_fraction"], self.split["split_seed"])
            self._by_split = {name: [documents[i] for i in rows[name]] for name in SPLITS}
        return self._by_split


def _empty(source: dict) -> str:
    if source["max_bytes"] is not None:
        return (f"data.source.max_bytes: {source['max_bytes']} bytes leave no document of "
                f"{source['path'] or 'the embedded corpus'} (its first is larger); raise it or set it to null")
    return f"data.source.path: {source['path']} holds no text (every document is empty)"


def _settings(given, defaults: dict, schema: type, key: str) -> dict:
    """``given`` (a dict or DictConfig, None: ``{}``) over ``defaults``; an unknown key or bad number fails here."""
    if given is None:
        given = {}
    elif not isinstance(given, dict):  # a Hydra DictConfig
        from omegaconf import OmegaConf

        given = OmegaConf.to_container(given, resolve=True)
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}: unknown key; expected one of {', '.join(defaults)}")
    settings = {**defaults, **given}
    for name, value in settings.items():
        check_argument(schema, name, value, f"{key}.{name}", ConfigError)
    return settings


def _tokenizers_version() -> str:
    """Part of a trained tokenizer's cache key: another ``tokenizers`` release may train another one."""
    from importlib.metadata import version

    return version("tokenizers")
