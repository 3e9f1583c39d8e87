"""What ``evaluate`` scores: by default the checkpoint's own data and test split.

A model is judged on rows it never trained on, and those are fixed by its run: the data
config, the seed and the split it trained with. ``evaluate`` therefore takes them from
the run's ``config.yaml`` (beside ``checkpoints/``), from the registry version's
``meta.json`` for a registered checkpoint, or else from the checkpoint itself (recorded
in training), not from the command's defaults.

``data=...`` scores other data. The run's own table split another way (another
``seed``, ``data.split_seed`` or ``data.*_fraction``) is refused: its test split would
hold rows the model trained on. ``settle`` imports no torch: its answers come before
torch loads.
"""
from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from factory.errors import ConfigError

log = logging.getLogger(__name__)

#: The data keys that decide which rows form the test split of one table (a cross-validated run's
#: checkpoint: its fold, ``factory.training.cross_validation``), and their values where a config lacks them.
SPLIT_KEYS = ("val_fraction", "test_fraction", "split_seed", "cv_folds", "cv_fold")
_SPLIT_DEFAULTS = {"cv_folds": None, "cv_fold": 0}
#: Registry versions keep the run's config and data in this file beside ``model.ckpt``.
REGISTRY_METADATA = "meta.json"
#: The DataModule hyperparameter under which checkpoints record what they trained on.
HPARAMS_KEY = "trained_on"


@dataclass
class Trained:
    """What a checkpoint was trained on, as its run recorded it (``None`` where unknown)."""

    data: dict | None = None  # the resolved data config
    seed: int | None = None
    fingerprint: str | None = None  # of the whole table, before the split
    where: Path | None = None  # the file this came from


def trained_on(checkpoint: Path) -> Trained:
    """Read what ``checkpoint`` trained on from its run directory or registry version.

    Args:
        checkpoint: ``<run>/checkpoints/<name>.ckpt`` (a file or a ZeRO directory), or a
            registry version's ``model.ckpt``.
    """
    from factory.rundir import manifest
    from factory.rundir.layout import CONFIG, in_checkpoint_dir

    run_dir = checkpoint.parent.parent
    config_file = run_dir / CONFIG
    if in_checkpoint_dir(checkpoint) and config_file.is_file():
        config = OmegaConf.load(config_file)
        fingerprint = None
        try:
            fingerprint = (manifest.load_record(run_dir).data or {}).get("fingerprint")
        except (OSError, ValueError, TypeError):
            pass  # no readable run.json: the split is still the config's; only the data check is lost
        data = config.get("data")
        return Trained(OmegaConf.to_container(data) if data is not None else None,
                       config.get("seed"), fingerprint, config_file)
    meta_file = checkpoint.parent / REGISTRY_METADATA
    if meta_file.is_file():
        meta = json.loads(meta_file.read_text())
        data = (meta.get("config") or {}).get("data")
        return Trained(data, meta.get("seed"), (meta.get("data") or {}).get("fingerprint"), meta_file)
    return Trained()


def settle(cfg: DictConfig) -> tuple[DictConfig, Trained]:
    """A copy of an ``evaluate`` config with its data and seed taken from the checkpoint's run.

    ``ckpt_path`` is resolved (a run directory names its best checkpoint). Without
    ``data``, the run's data config and seed are used; a ``seed`` other than the run's
    and the default is refused (it could only mean re-splitting the run's data). With
    ``data``, the command's ``seed`` is the data config's ``${seed}``, and ``check_split``
    refuses it when it re-splits the run's own table. ``data`` stays unset when the run's
    config cannot be found: ``evaluate`` reads it from the checkpoint itself.

    Raises:
        ConfigError: no such checkpoint; a ``seed`` that would re-split the run's data.
    """
    from factory.rundir.checkpoints import resolve_checkpoint

    cfg = copy.deepcopy(cfg)
    if OmegaConf.is_missing(cfg, "ckpt_path") or cfg.get("ckpt_path") is None:
        return cfg, Trained()  # validate() names the missing key
    checkpoint = resolve_checkpoint(cfg.ckpt_path)
    with open_dict(cfg):
        cfg.ckpt_path = str(checkpoint)
    return adopt(cfg, trained_on(checkpoint), required=False)


def adopt(cfg: DictConfig, trained: Trained, required: bool = True) -> tuple[DictConfig, Trained]:
    """A copy of ``cfg`` whose unset ``data`` is the one the checkpoint trained on, with its seed.

    Raises:
        ConfigError: a ``seed`` that would re-split the run's data; with ``required``, no
            ``data`` and nothing known of the run's (``missing_data``); a credential the run
            recorded masked (``check_unmasked``).
    """
    import dataclasses

    from factory.config.schemas import EvaluateConf

    cfg = copy.deepcopy(cfg)
    if cfg.get("data") is not None:
        return cfg, trained
    if trained.data is None:
        if required:
            raise missing_data(cfg.ckpt_path)
        return cfg, trained
    default_seed = next(f.default for f in dataclasses.fields(EvaluateConf) if f.name == "seed")
    if cfg.get("seed") not in (default_seed, trained.seed):
        raise ConfigError(f"seed={cfg.seed}: the checkpoint is tested on its run's own split "
                          f"(seed {trained.seed}, from {trained.where}); another seed would put "
                          "training rows into the test split. Leave seed out, or pass data=... "
                          "to test on other data")
    check_unmasked(trained)
    with open_dict(cfg):
        cfg.data = trained.data
        cfg.seed = trained.seed
    return cfg, trained


def check_unmasked(trained: Trained) -> None:
    """Refuse the run's data config where a credential typed into it was written masked.

    ``config.yaml``, ``meta.json`` and the checkpoint hold ``***`` in its place
    (``factory.redact``); connecting with it would fail far from the cause. A credential
    given as ``${oc.env:...}`` is recorded as that reference and resolves again here.

    Raises:
        ConfigError: naming the first key holding ``***``.
    """
    from factory.redact import MASK

    key = _masked_key(trained.data, "data", MASK)
    if key is not None:
        raise ConfigError(f"{key}: the checkpoint's run recorded this credential masked ('{MASK}', in "
                          f"{trained.where}); pass data=<config> with it (and seed={trained.seed}), or give it in "
                          "training as ${oc.env:<VAR>} (recorded unresolved, it resolves again here)")


def _masked_key(value, key: str, mask: str) -> str | None:
    """The first key under ``value`` holding what ``factory.redact`` masks: a secret key's whole
    value, a URL's password (``user:***@host``) or a ``key=***`` pair in free text."""
    if isinstance(value, dict):
        found = (_masked_key(v, f"{key}.{k}", mask) for k, v in value.items())
    elif isinstance(value, (list, tuple)):
        found = (_masked_key(v, f"{key}[{i}]", mask) for i, v in enumerate(value))
    else:
        return key if isinstance(value, str) and (value == mask or f":{mask}@" in value or f"={mask}" in value) \
            else None
    return next((k for k in found if k is not None), None)


def record_in_checkpoints(datamodule, cfg: DictConfig) -> None:
    """Make each checkpoint of a run say what it trained on: data config, seed, table fingerprint.

    Lightning saves a DataModule's hyperparameters in every checkpoint (and ZeRO exports keep
    them), so a checkpoint copied away from its run directory still evaluates on its own
    split (``from_checkpoint``). Credentials are masked as in ``config.yaml``.
    """
    from factory import redact

    datamodule.save_hyperparameters({HPARAMS_KEY: {"data": redact.resolved(cfg.data), "seed": cfg.seed,
                                                   "fingerprint": datamodule.fingerprint}})


def from_checkpoint(checkpoint: dict, path: str | Path) -> Trained:
    """What a loaded checkpoint says it trained on (``record_in_checkpoints``); empty for older ones."""
    saved = (checkpoint.get("datamodule_hyper_parameters") or {}).get(HPARAMS_KEY) or {}
    return Trained(saved.get("data"), saved.get("seed"), saved.get("fingerprint"), Path(path))


def check_overrides(overrides: list[str]) -> None:
    """Refuse ``data.<key>=...`` without ``data=<config>``: the run's own data config takes none.

    Without ``data=`` the composed config has no ``data`` node (the run's is read later),
    and Hydra's answer would suggest adding the key with ``+``.

    Raises:
        ConfigError: naming the first such override.
    """
    keys = [o.split("=", 1)[0].lstrip("+~") for o in overrides if "=" in o and not o.startswith("-")]
    if "data" in keys:
        return
    for key in keys:
        if key.startswith("data."):
            raise ConfigError(f"{key}: evaluate tests on the data config the checkpoint's run used, unchanged "
                              "(a changed split would hold training rows); to test on other data, pass "
                              "data=<config> with it")


def missing_data(checkpoint: str | Path) -> ConfigError:
    """The error for a checkpoint whose run's data config is nowhere to be found, and no ``data=``."""
    return ConfigError(f"ckpt_path: {checkpoint} does not say what it trained on (no run config.yaml or "
                       "registry meta.json around it, and written before checkpoints recorded it): pass "
                       "data=<config> and the run's seed=<seed> to choose the data to test it on")


def check_split(datamodule, trained: Trained, checkpoint: str | Path, own_data: bool) -> None:
    """Refuse to test on the run's own table split differently from training.

    The table is recognized by its fingerprint. The same table and split parameters give
    the same test rows; any other ``SPLIT_KEYS`` value is refused, as it brings rows the
    model trained or was selected on into the test split.

    Args:
        datamodule: the evaluation's DataModule, set up.
        trained: what the checkpoint trained on (``trained_on``).
        checkpoint: named in messages.
        own_data: the data config is the run's own (no ``data=``): a table that changed
            since (a rewritten file) is then worth a warning, as the metrics are not the run's.

    Raises:
        ConfigError: the run's table with another split, naming the differing keys.
    """
    if trained.fingerprint is None or trained.data is None:
        return
    if datamodule.fingerprint != trained.fingerprint:
        if own_data:
            log.warning("the data of %s changed since it was trained (fingerprint %s then, %s now): "
                        "these are not the run's test metrics", checkpoint, trained.fingerprint[:12],
                        (datamodule.fingerprint or "")[:12])
        return
    ours, theirs = _split(datamodule), _split(trained.data)
    differ = [f"data.{key}={ours[key]} (trained with {theirs[key]})" for key in SPLIT_KEYS if ours[key] != theirs[key]]
    if differ:
        seeded = ours["split_seed"] != theirs["split_seed"] and theirs["split_seed"] == trained.seed
        hint = f", or pass seed={trained.seed} to split it as the run did" if seeded else ""
        raise ConfigError(f"data: {checkpoint} was trained on this same table, split another way "
                          f"({', '.join(differ)}): the test rows would not be the ones it never trained on. "
                          f"Leave out data=... to test on the run's own test split{hint}")


def check_context(datamodule, model) -> None:
    """Refuse to test a language model on windows longer than the context it was trained with
    (``data=text data.block_size=...``): its positions stop there. Shorter windows test fine.

    Raises:
        ConfigError: naming ``data.block_size`` and the longest it may be.
    """
    if getattr(model, "task", None) != "language_modeling":  # a SupervisedModel's spec is an InputSpec
        return
    spec = model.spec
    trained, asked = int(spec["block_size"]), int(datamodule.input_spec.block_size)
    if asked > trained:
        raise ConfigError(f"data.block_size: {asked} tokens is longer than the model's context ({trained}, its "
                          f"training block_size): pass data.block_size={trained} or less")


def _split(data) -> dict:
    get = data.get if isinstance(data, dict) else lambda key, default: getattr(data, key, default)
    split = {key: get(key, _SPLIT_DEFAULTS.get(key)) for key in SPLIT_KEYS}
    unused = "cv_fold" if split["cv_folds"] is None else "test_fraction"  # folds replace the test fraction
    return {**split, unused: None}
