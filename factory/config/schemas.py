"""Typed schemas for every config node, keyed by the ``_target_`` they build.

These dataclasses import nothing heavy, so a typo'd key or a wrong type is reported
before torch or Lightning load. ``tests/unit/config/test_configs.py`` checks each one
against the signature of the object it describes, so a schema cannot drift from code;
``tests/unit/config/test_schema_defaults.py`` holds each default to the signature's (the
code owns a default; validation never fills one in, and the YAML in conf/ sets what users get).
Fields that a caller fills in at build time (a data module's ``source`` object, a
network's ``spec``) are not in the schemas (``FILLED_BY_FACTORY`` in
``factory.config.keys`` names them). Every numeric field declares its range (``bounded``,
``factory.config.ranges``), held by ``tests/unit/config/test_ranges.py``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

from omegaconf import MISSING

from factory.config.ranges import COUNT, FRACTION, NON_NEGATIVE, POSITIVE, SEED, Range, bounded
from factory.config.torch_schemas import TORCH_SCHEMAS

#: ``_target_`` -> schema dataclass. Filled by ``@schema_for`` beside each definition.
SCHEMAS: dict[str, type] = {}


def schema_for(target: str):
    """Register the decorated dataclass as the schema of nodes built from ``target``."""

    def register(cls: type) -> type:
        SCHEMAS[target] = cls
        return cls

    return register


def choices(*allowed: Any, default: Any = MISSING) -> Any:
    """A field whose value must be one of ``allowed``."""
    return field(default=default, metadata={"choices": allowed})


# --- data -------------------------------------------------------------------

ANY_NUMBER = Range()  # a bound on a column's values: the data's scale, not factory's


@dataclass
class ColumnRuleConf:
    """``data.curation.columns.<column>``: what each value must be (pandera checks it; failures quarantined)."""

    dtype: Optional[str] = None  # int64, float64, str, bool, ...: values are read as it; unreadable: quarantined
    nullable: bool = True  # false: a null is quarantined
    min: Optional[float] = bounded(ANY_NUMBER, None)  # the column's own scale: any number
    max: Optional[float] = bounded(ANY_NUMBER, None)
    allowed: Optional[List[Any]] = None  # the values it may take
    regex: Optional[str] = None  # matched from the value's start (anchor with $ for the whole value)
    unique: bool = False  # later copies of a value are quarantined
    pii: Optional[str] = choices(None, "hash", "drop", default=None)  # hashed (HMAC) or dropped before training


@dataclass
class CurationConf:
    """``data.curation``: declared rules, quarantine, dedupe, PII and governance of the table."""

    dataset: Optional[str] = None  # governed dataset name; None: the source's name
    classification: str = choices("public", "internal", "restricted", default="public")
    columns: Dict[str, ColumnRuleConf] = field(default_factory=dict)
    unique: List[str] = field(default_factory=list)  # columns that together are a unique key
    max_quarantine: float = bounded(FRACTION, 0.05)  # share of rows; more: the run fails
    dedupe: bool = True  # exact duplicate rows: all but the first dropped
    scan_text: bool = True  # string columns not tagged pii scanned for PII patterns (counted)
    store: Optional[str] = None  # snapshots and quarantine; None: $FACTORY_ROOT/data, else ./data


@schema_for("factory.data.TabularDataModule")
@dataclass
class TabularDataModuleConf:
    source: Any = MISSING
    batch_size: Optional[int] = bounded(COUNT, None)  # None: sized to the train split (auto_batch_size)
    num_workers: int = bounded(NON_NEGATIVE, 0)
    val_fraction: float = bounded(FRACTION, 0.15)
    test_fraction: float = bounded(FRACTION, 0.15)
    split_seed: int = bounded(SEED, 42)
    max_onehot: int = bounded(NON_NEGATIVE, 16)
    cv_folds: Optional[int] = bounded(Range(ge=2), None)  # k: k stratified folds, each the test split once
    cv_fold: int = bounded(NON_NEGATIVE, 0)  # the fold held out as test (a cv run records its kept model's)
    snapshot: Optional[str] = None  # a stored snapshot's id: train on exactly it (no source read)
    curation: Optional[CurationConf] = None  # None: CurationConf's defaults


@schema_for("factory.data.streaming.StreamingDataModule")
@dataclass
class StreamingDataModuleConf:
    source: Any = MISSING
    batch_size: Optional[int] = bounded(COUNT, None)  # per process; None: sized to the train split
    num_workers: int = bounded(NON_NEGATIVE, 0)
    val_fraction: float = bounded(FRACTION, 0.15)
    test_fraction: float = bounded(FRACTION, 0.15)
    split_seed: int = bounded(SEED, 42)
    max_onehot: int = bounded(NON_NEGATIVE, 16)
    batch_rows: int = bounded(COUNT, 65536)  # rows per record batch read
    sample_rows: int = bounded(COUNT, 1000000)  # quantile bins from at most this many sampled rows
    stats_cache: Optional[str] = None  # a directory sharing the statistics pass between ranks and runs
    encoded_cache: Optional[str] = None  # a directory keeping encoded rows after the first epoch (docs/data.md)
    dataset: Optional[str] = None  # the governed dataset's name (access policy, audit); None: the source's name
    classification: str = choices("public", "internal", "restricted", default="public")


@dataclass
class TextSourceConf:
    """``data.source`` of ``data=text``: the files (or the embedded stdlib corpus) and how to read them."""

    path: Optional[str] = None  # a .txt/.jsonl file, glob or directory; None: the embedded Python stdlib corpus
    text_field: str = "text"  # the field of each JSONL line that holds its document
    document_separator: Optional[str] = None  # a regex cutting .txt files into documents; None: a file is one
    max_bytes: Optional[int] = bounded(COUNT, None)  # documents in order up to this many UTF-8 bytes; None: all


@dataclass
class TextTokenizerConf:
    """``data.tokenizer`` of ``data=text``: a byte-level BPE trained here, or a tokenizer.json."""

    vocab_size: int = bounded(Range(ge=257), 4096)  # trained vocabulary: 256 bytes, EOS, then merges
    path: Optional[str] = None  # a Hugging Face tokenizer.json to use instead of training one
    eos_token: str = "<|endoftext|>"  # the token closing each document


@schema_for("factory.data.text.TextDataModule")
@dataclass
class TextDataModuleConf:
    source: Optional[TextSourceConf] = None  # None: TextSourceConf's defaults (the embedded corpus)
    tokenizer: Optional[TextTokenizerConf] = None  # None: TextTokenizerConf's defaults
    block_size: int = bounded(COUNT, 256)  # tokens of context per window
    batch_size: Optional[int] = bounded(COUNT, None)  # windows per batch and process; None: 32
    num_workers: int = bounded(NON_NEGATIVE, 0)
    val_fraction: float = bounded(FRACTION, 0.05)  # share of the text (by document) for validation
    test_fraction: float = bounded(FRACTION, 0.05)
    split_seed: int = bounded(SEED, 42)  # the document split and the training windows' draws
    windows_per_epoch: Optional[int] = bounded(COUNT, None)  # over all ranks; None: train tokens // block_size
    eval_windows: Optional[int] = bounded(COUNT, 256)  # cap on val/test windows; None: every stride
    cache_dir: Optional[str] = None  # tokenizers and token files; None: $FACTORY_ROOT/data/text-cache


SHIFT_SD = Range(ge=-10, le=10)  # a covariate shift, in reference standard deviations


@dataclass
class FraudShiftConf:
    """``data.source.shift``: reference standard deviations added to a numeric column after the label."""

    amount: float = bounded(SHIFT_SD, 0.0)
    hour: float = bounded(SHIFT_SD, 0.0)
    day_of_week: float = bounded(SHIFT_SD, 0.0)
    distance_from_home_km: float = bounded(SHIFT_SD, 0.0)
    card_age_days: float = bounded(SHIFT_SD, 0.0)
    tx_velocity_24h: float = bounded(SHIFT_SD, 0.0)


@dataclass
class FraudNewCategoryConf:
    """``data.source.new_category``: a merchant category the training data never saw."""

    name: str = "crypto_exchange"
    share: float = bounded(Range(gt=0, le=1), 0.05)  # of the transactions
    amount: float = bounded(POSITIVE, 150.0)  # typical (median) amount
    risk: float = bounded(Range(ge=-3, le=3), 1.0)  # category fraud risk: grocery -0.8, gift_cards 1.4
    online: float = bounded(Range(ge=0, le=1), 0.9)  # share made online


@dataclass
class FraudSensitiveConf:
    """``data.source.sensitive``: a customer group column; ``disparity`` adds to one group's fraud logit."""

    column: str = "customer_age_band"
    group: str = choices("18-29", "30-49", "50+", default="18-29")
    disparity: float = bounded(Range(ge=-5, le=5), 0.0)


@schema_for("factory.data.sources.FraudSource")
@dataclass
class FraudSourceConf:
    rows: int = bounded(COUNT, 50000)
    fraud_rate: float = bounded(Range(gt=0, lt=0.5), 0.015)
    seed: int = bounded(SEED, 42)
    world_seed: Optional[int] = bounded(SEED, None)  # the merchant world's seed; None: seed
    shift: Optional[FraudShiftConf] = None
    new_category: Optional[FraudNewCategoryConf] = None
    sensitive: Optional[FraudSensitiveConf] = None


@schema_for("factory.data.sources.SklearnSource")
@dataclass
class SklearnSourceConf:
    dataset: str = choices("breast_cancer", "digits")


@dataclass
class DeclaredSchemaConf:
    """Schema keys of sources whose table carries no schema of its own."""

    target: str = MISSING
    features: Optional[List[str]] = None
    categorical: Optional[List[str]] = None
    task: Optional[str] = choices("binary", "multiclass", "regression", None, default=None)
    positive_label: Optional[Any] = None


@schema_for("factory.data.sources.FileSource")
@dataclass
class FileSourceConf(DeclaredSchemaConf):
    path: str = MISSING
    format: Optional[str] = choices("csv", "parquet", None, default=None)
    storage_options: Optional[Dict[str, Any]] = None
    encoding: str = "utf-8"  # of CSV files; checked by FileSource (codecs.lookup)
    filter: Optional[List[Any]] = None  # [[column, op, value], ...]: rows kept (factory.data.sources.filters)


@schema_for("factory.data.sources.WarehouseSource")
@dataclass
class WarehouseSourceConf(DeclaredSchemaConf):
    url: str = MISSING
    query: str = MISSING
    filter: Optional[str] = None  # a SQL predicate the database applies (channel = 'online')


# --- model ------------------------------------------------------------------

@schema_for("factory.models.SupervisedModel")
@dataclass
class SupervisedModelConf:
    net: Any = MISSING
    optimizer: Any = MISSING
    scheduler: Any = None
    pos_weight: Optional[float] = bounded(POSITIVE, None)


@schema_for("factory.models.TabularMLP")
@dataclass
class TabularMLPConf:
    hidden_dims: List[int] = bounded(COUNT, default_factory=lambda: [128, 64])
    dropout: float = bounded(FRACTION, 0.1)
    norm: str = choices("batch", "layer", "none", default="batch")
    embed_dim: int = bounded(COUNT, 8)
    num_embedding: str = choices("none", "periodic", "piecewise_linear", default="none")  # factory.models.num_embeddings
    num_embedding_dim: int = bounded(COUNT, 16)


@schema_for("factory.models.TabM")
@dataclass
class TabMConf:
    k: int = bounded(COUNT, 32)
    d_block: int = bounded(COUNT, 128)
    n_blocks: int = bounded(COUNT, 2)
    dropout: float = bounded(FRACTION, 0.1)
    arch_type: str = choices("tabm", "tabm-mini", default="tabm")
    embed_dim: int = bounded(COUNT, 8)
    num_embedding: str = choices("none", "periodic", "piecewise_linear", default="none")  # factory.models.num_embeddings
    num_embedding_dim: int = bounded(COUNT, 16)


@schema_for("factory.models.WideMLP")
@dataclass
class WideMLPConf:
    width: int = bounded(COUNT, 1024)
    depth: int = bounded(COUNT, 4)
    embed_dim: int = bounded(COUNT, 8)
    activation_checkpointing: bool = False


@schema_for("factory.models.SmallCNN")
@dataclass
class SmallCNNConf:
    channels: List[int] = bounded(COUNT, default_factory=lambda: [16, 32])
    dropout: float = bounded(FRACTION, 0.2)


@dataclass
class LRScheduleConf:
    """``model.schedule``: linear warmup, then cosine decay to ``min_lr_ratio`` x lr at the last step."""

    warmup_steps: int = bounded(NON_NEGATIVE, 100)
    min_lr_ratio: float = bounded(Range(ge=0, le=1), 0.1)


@schema_for("factory.models.LanguageModel")
@dataclass
class LanguageModelConf:
    net: Any = MISSING
    optimizer: Any = MISSING
    schedule: Optional[LRScheduleConf] = None  # None: a constant learning rate
    weight_decay: float = bounded(NON_NEGATIVE, 0.1)  # on the Linear layers' weights only
    peak_flops: Optional[float] = bounded(POSITIVE, None)  # per device, for train/mfu; None: known GPUs' table


@schema_for("factory.models.GPT")
@dataclass
class GPTConf:
    n_layer: int = bounded(COUNT, 4)
    n_head: int = bounded(COUNT, 4)
    n_embd: int = bounded(COUNT, 128)  # a multiple of n_head
    dropout: float = bounded(FRACTION, 0.0)
    bias: bool = False
    positions: str = choices("learned", "rotary", default="learned")
    activation_checkpointing: bool = False


# --- strategy ---------------------------------------------------------------

@schema_for("factory.distributed.single_device")
@dataclass
class SingleDeviceConf:
    pass


@schema_for("factory.distributed.ddp")
@dataclass
class DDPConf:
    process_group_backend: Optional[str] = choices("gloo", "nccl", None, default=None)
    find_unused_parameters: bool = False


@schema_for("factory.distributed.deepspeed_zero")
@dataclass
class DeepSpeedZeroConf:
    stage: int = choices(1, 2, 3, default=2)
    offload_optimizer: bool = False
    offload_parameters: bool = False
    allgather_bucket_size: float = bounded(POSITIVE, 5e7)
    reduce_bucket_size: float = bounded(POSITIVE, 1e7)
    stage3_prefetch_bucket_size: float = bounded(NON_NEGATIVE, 5e7)
    stage3_max_live_parameters: float = bounded(POSITIVE, 1e8)
    stage3_param_persistence_threshold: float = bounded(NON_NEGATIVE, 1e5)
    pin_memory: bool = False
    process_group_backend: Optional[str] = choices("gloo", "nccl", None, default=None)
    deepspeed_config: Optional[Dict[str, Any]] = None


@schema_for("factory.distributed.cpu_adam")
@dataclass
class CPUAdamConf:
    lr: float = bounded(POSITIVE, 1e-3)
    betas: List[float] = bounded(FRACTION, default_factory=lambda: [0.9, 0.999])
    eps: float = bounded(NON_NEGATIVE, 1e-8)
    weight_decay: float = bounded(NON_NEGATIVE, 0.0)


# --- trainer, loggers, callbacks ---------------------------------------------

# Lightning's precision inputs (lightning_fabric.connector._PRECISION_INPUT; a test keeps them equal).
PRECISIONS = ("transformer-engine", "transformer-engine-float16", "16-true", "16-mixed", "bf16-true",
              "bf16-mixed", "32-true", "64-true", 64, 32, 16, "64", "32", "16", "bf16")
# limit_*_batches: a count of batches (int) or a share of them (float).
BATCHES = {int: NON_NEGATIVE, float: Range(ge=0, le=1)}


@schema_for("pytorch_lightning.Trainer")
@dataclass
class TrainerConf:
    accelerator: str = "auto"
    devices: Any = bounded({int: Range(ge=1, special={-1: "all"})}, "auto")  # or "auto", or a list of ids
    num_nodes: int = bounded(COUNT, 1)
    precision: Union[int, str] = choices(*PRECISIONS, default="32-true")  # not Lightning's null: factory reads a value
    max_epochs: Optional[int] = bounded(Range(ge=0, special={-1: "no limit"}), None)  # 0: see validate
    min_epochs: Optional[int] = bounded(NON_NEGATIVE, None)
    max_steps: int = bounded(Range(ge=0, special={-1: "no limit"}), -1)
    limit_train_batches: Optional[Union[int, float]] = bounded(BATCHES, None)
    limit_val_batches: Optional[Union[int, float]] = bounded(BATCHES, None)
    limit_test_batches: Optional[Union[int, float]] = bounded(BATCHES, None)
    fast_dev_run: Union[bool, int] = bounded({int: NON_NEGATIVE}, False)
    check_val_every_n_epoch: Optional[int] = bounded(COUNT, 1)
    log_every_n_steps: Optional[int] = bounded(COUNT, None)
    gradient_clip_val: Optional[Union[int, float]] = bounded(NON_NEGATIVE, None)
    accumulate_grad_batches: int = bounded(COUNT, 1)
    deterministic: Optional[bool] = None
    enable_progress_bar: Optional[bool] = None
    # Not in conf/trainer/: added with +trainer.<key>=..., typed so a bad value answers before loading.
    barebones: bool = False
    benchmark: Optional[bool] = None
    detect_anomaly: bool = False
    enable_autolog_hparams: bool = True
    enable_checkpointing: Optional[bool] = None
    enable_model_summary: Optional[bool] = None
    gradient_clip_algorithm: Optional[str] = choices("value", "norm", None, default=None)
    inference_mode: bool = True
    limit_predict_batches: Optional[Union[int, float]] = bounded(BATCHES, None)
    min_steps: Optional[int] = bounded(NON_NEGATIVE, None)
    model_registry: Optional[str] = None
    num_sanity_val_steps: Optional[int] = bounded(Range(ge=0, special={-1: "all"}), None)
    overfit_batches: Union[int, float] = bounded(BATCHES, 0.0)
    reload_dataloaders_every_n_epochs: int = bounded(NON_NEGATIVE, 0)
    sync_batchnorm: bool = False
    use_distributed_sampler: bool = True


@schema_for("pytorch_lightning.loggers.WandbLogger")
@dataclass
class WandbLoggerConf:
    offline: bool = False
    project: Optional[str] = None
    name: Optional[str] = None
    save_dir: str = "."
    tags: List[str] = field(default_factory=list)
    log_model: Union[bool, str] = False


@schema_for("pytorch_lightning.loggers.TensorBoardLogger")
@dataclass
class TensorBoardLoggerConf:
    save_dir: str = MISSING
    name: Optional[str] = "lightning_logs"
    version: Optional[Union[int, str]] = bounded({int: NON_NEGATIVE}, None)
    default_hp_metric: bool = True
    log_graph: bool = False


@schema_for("pytorch_lightning.loggers.MLFlowLogger")
@dataclass
class MLFlowLoggerConf:
    experiment_name: str = "lightning_logs"
    run_name: Optional[str] = None
    tracking_uri: Optional[str] = None
    artifact_location: Optional[str] = None
    log_model: Union[bool, str] = False


@dataclass
class TrackingConf:
    """What factory hands the experiment tracker when a run ends (``factory.tracking.loggers``)."""

    log_checkpoint: bool = False  # the best checkpoint as one file: a wandb/MLflow artifact


@schema_for("pytorch_lightning.loggers.CSVLogger")
@dataclass
class CSVLoggerConf:
    save_dir: str = MISSING
    name: Optional[str] = "lightning_logs"
    version: Optional[Union[int, str]] = bounded({int: NON_NEGATIVE}, None)


@schema_for("pytorch_lightning.callbacks.ModelCheckpoint")
@schema_for("factory.training.checkpointing.RunCheckpoint")  # takes the same arguments
@dataclass
class ModelCheckpointConf:
    dirpath: Optional[str] = None
    filename: Optional[str] = None
    monitor: Optional[str] = None
    mode: str = choices("min", "max", default="min")
    save_last: Optional[bool] = None
    save_top_k: int = bounded(Range(ge=0, special={-1: "all"}), 1)
    auto_insert_metric_name: bool = True
    enable_version_counter: bool = True


@schema_for("factory.training.fault_tolerance.PreemptionCheckpoint")
@dataclass
class PreemptionCheckpointConf:
    dirpath: str = MISSING
    every_n_train_steps: int = bounded(NON_NEGATIVE, 0)  # 0: on SIGTERM only


@schema_for("pytorch_lightning.callbacks.EarlyStopping")
@dataclass
class EarlyStoppingConf:
    monitor: str = MISSING
    mode: str = choices("min", "max", default="min")
    patience: int = bounded(NON_NEGATIVE, 3)
    min_delta: float = bounded(NON_NEGATIVE, 0.0)


@schema_for("pytorch_lightning.callbacks.LearningRateMonitor")
@dataclass
class LearningRateMonitorConf:
    logging_interval: Optional[str] = choices("step", "epoch", None, default=None)


# --- top level -----------------------------------------------------------------

@dataclass
class MonitorConf:
    metric: str = "val/loss"
    mode: str = choices("min", "max", default="min")


@dataclass
class PathsConf:
    root_dir: str = "."
    data_dir: str = MISSING
    output_dir: str = MISSING
    run_dir: str = MISSING


@dataclass
class PlanConf:
    """The memory check before launch (``factory.distributed.planner``, ``scripts/plan.py``)."""

    check: bool = True
    device_memory_gb: Optional[float] = bounded(POSITIVE, None)
    host_memory_gb: Optional[float] = bounded(POSITIVE, None)  # per node, for offload; None: this machine's RAM
    headroom: float = bounded(Range(gt=0, le=1), 0.9)


@dataclass
class EnergyConf:
    """conf/energy/: energy and emissions of a run, report or scoring job (``factory.training.energy``)."""

    track: bool = True  # false: no tracker, codecarbon not imported
    country: str = "USA"  # ISO 3166 alpha-3; checked against CodeCarbon's offline table when tracking starts
    measure_power_secs: float = bounded(POSITIVE, 15.0)


@dataclass
class TrialConf:
    """The Optuna trial a sweep job belongs to (set by factory's sweeper, not by hand)."""

    storage: str = MISSING  # an Optuna storage URL, or a journal file path
    study: str = MISSING
    number: int = bounded(NON_NEGATIVE)
    prune: bool = True  # whether the sweeper added callbacks.optuna_pruning (its study has a pruner)


@schema_for("factory.sweeps.trial.OptunaPruning")
@dataclass
class OptunaPruningConf:
    """Added to each job's ``callbacks`` by factory's Optuna sweeper when its study prunes."""

    storage: str = MISSING
    study: str = MISSING
    number: int = bounded(NON_NEGATIVE)
    monitor: str = MISSING


#: The after-run hook that publishes a run to its tracker and closes the tracker's run.
TRACKING_HOOK = "factory.tracking.loggers.after_run"
#: What a run does when it ends, in order (conf/train.yaml's ``after_run``).
#: The after-run hook that writes a completed run's reference profile (first: trackers then see it in run.json).
PROFILE_HOOK = "factory.monitoring.profile.after_run"
STANDARD_AFTER_RUN = (PROFILE_HOOK, TRACKING_HOOK, "factory.reports.after_run")


@dataclass
class TrainConf:
    data: Any = MISSING
    model: Any = MISSING
    strategy: Any = MISSING
    trainer: Any = MISSING
    logger: Any = None
    callbacks: Dict[str, Any] = field(default_factory=dict)
    paths: PathsConf = MISSING
    task_name: str = "train"
    tags: List[str] = field(default_factory=list)
    seed: int = bounded(SEED, 42)
    monitor: MonitorConf = field(default_factory=MonitorConf)
    # scikit-learn baselines fitted on the same split (factory.training.baselines); a name alone = a one-item list
    baseline: Optional[Union[str, List[str]]] = choices("logistic_regression", "hist_gradient_boosting", None,
                                                        default=None)
    train: bool = True
    test: bool = True
    ckpt_path: Optional[str] = None
    resume: Optional[Union[bool, str]] = choices(None, False, "auto", default=None)  # auto: factory.rundir.resume
    plan: PlanConf = field(default_factory=PlanConf)
    tracking: TrackingConf = field(default_factory=TrackingConf)
    report: Optional[ReportConf] = None  # report=<name>: run it on this run when it finishes
    reports: List[str] = field(default_factory=list)  # more reports by name, run the same way
    search_space: Dict[str, str] = field(default_factory=dict)  # key -> Hydra sweep syntax, for Optuna
    trial: Optional[TrialConf] = None  # set per job by the Optuna sweeper
    # Hooks called when the run ends (factory.training.hooks): dotted paths, each checked to name a function.
    # A config without the key runs the standard ones, as conf/train.yaml lists them.
    after_run: List[str] = field(default_factory=lambda: list(STANDARD_AFTER_RUN), metadata={"callables": True})
    verbose: bool = False  # true: the console shows everything train.log gets (factory.training.output)
    energy: Optional[EnergyConf] = None  # None: not measured (conf/train.yaml selects energy: default)


@dataclass
class EvaluateConf:
    data: Any = None  # None: the checkpoint's own run's data config (factory.training.evaluation)
    trainer: Any = MISSING
    paths: PathsConf = MISSING
    task_name: str = "evaluate"
    tags: List[str] = field(default_factory=list)
    seed: int = bounded(SEED, 42)
    ckpt_path: str = MISSING


@dataclass
class ScoreConf:
    """Batch scoring of files or a data config's table (``scripts/score.py``, ``factory.serving.score``)."""

    model: str = MISSING  # NAME, NAME@VERSION or NAME@STAGE
    registry: Optional[str] = None  # None: factory.registry.default_dir()
    backend: str = choices("onnx", "onnx-int8", "torch", default="onnx")
    input: Optional[Union[str, List[str]]] = None  # a file, a glob, a directory (or a list of them); or data=
    data: Any = None  # a data config whose source table is scored instead of input
    output: str = MISSING  # a new (or empty) directory
    batch_rows: int = bounded(COUNT, 65536)
    progress: Optional[bool] = None  # None: a progress bar when stderr is a terminal
    paths: PathsConf = MISSING
    task_name: str = "score"
    seed: int = bounded(SEED, 42)  # ${seed} of a data config's generated source
    energy: Optional[EnergyConf] = None  # None: not measured


@dataclass
class GenerateConf:
    """Text sampled from a language model (``scripts/generate.py``, ``factory.serving.samples``)."""

    model: str = MISSING  # a run directory or id, a checkpoint, or NAME, NAME@VERSION, NAME@STAGE
    registry: Optional[str] = None  # None: factory.registry.default_dir()
    prompt: str = ""  # the text continued; "": a new document
    max_new_tokens: int = bounded(COUNT, 64)
    temperature: float = bounded(NON_NEGATIVE, 1.0)  # 0: greedy, as the server's generate
    top_k: Optional[int] = bounded(COUNT, None)  # None: sample from the whole vocabulary
    seed: Optional[int] = bounded(SEED, None)  # None: a fresh seed each call (printed)
    num_samples: int = bounded(COUNT, 1)
    paths: PathsConf = MISSING
    task_name: str = "generate"


@dataclass
class LabelConf:
    """Labeling with Label Studio (``scripts/label.py``, ``factory.serving.labeling``)."""

    action: str = choices("export", "import")  # the command's first argument
    model: Optional[str] = None  # export: NAME, NAME@VERSION or NAME@STAGE
    registry: Optional[str] = None  # None: factory.registry.default_dir()
    input: Optional[Union[str, List[str]]] = None  # export: the pool's files; or data=
    data: Any = None  # export: a data config whose source table is the pool
    n: int = bounded(COUNT, 200)
    strategy: str = choices("uncertainty", "random", "diverse", default="uncertainty")
    pool: int = bounded(COUNT, 5)  # diverse: candidates = pool * n most uncertain rows
    out: Optional[str] = None  # export: a new (or empty) folder
    annotations: Optional[str] = None  # import: the Label Studio JSON export
    tasks: Optional[str] = None  # import: the folder export wrote; None: the export file's folder
    base: Optional[str] = None  # import: snapshot to append to; None: labeling.json's (the model's data)
    store: str = MISSING  # the snapshot store (paths.data_dir)
    unlabeled: str = choices("error", "skip", default="error")
    paths: PathsConf = MISSING
    task_name: str = "label"
    seed: int = bounded(SEED, 42)


# --- reports -------------------------------------------------------------------

@dataclass
class ReportConf:
    """One report in conf/report/: a notebook, its parameters, outputs and schedule."""

    name: str = MISSING
    notebook: str = MISSING  # relative to the repository root, or absolute
    parameters: Dict[str, Any] = field(default_factory=dict)
    required: List[str] = field(default_factory=list)  # parameters that must not be null
    formats: List[str] = field(default_factory=lambda: ["ipynb", "html"])
    hide_input: bool = True  # HTML shows outputs only; false: code cells too
    schedule: Optional[str] = None  # cron expression, for scripts/schedule.py
    timeout: Optional[int] = bounded(COUNT, 600)  # seconds per cell; a hung or dead kernel fails the report
    kernel: Optional[str] = None  # null: the project's kernel (factory.reports.kernel)


@dataclass
class ReportRootConf:
    report: ReportConf = MISSING
    paths: PathsConf = MISSING
    task_name: str = "report"
    reports_dir: str = MISSING
    energy: Optional[EnergyConf] = None  # None: not measured


# --- serving -------------------------------------------------------------------

@dataclass
class ReloadConf:
    enabled: bool = True  # follow the served stage: a newly promoted version is swapped in
    interval_s: float = bounded(POSITIVE, 2.0)  # how often the registry's index is checked


@dataclass
class BatchingConf:
    enabled: bool = True
    max_batch_size: int = bounded(COUNT, 256)  # rows per model call
    max_latency_ms: float = bounded(NON_NEGATIVE, 5.0)


@dataclass
class LimitsConf:
    max_rows: int = bounded(COUNT, 10000)  # rows per request; more is 413
    max_body_mb: float = bounded(Range(gt=0), 32.0)  # request body size in MB; more is 413
    max_new_tokens: int = bounded(COUNT, 256)  # a language model's max_tokens per generate request; more is 422


@dataclass
class RequestLogConf:
    enabled: bool = True
    exclude: List[str] = field(default_factory=list)  # columns never written to the request log
    flush_rows: int = bounded(COUNT, 2048)
    flush_interval_s: float = bounded(POSITIVE, 1.0)
    rotate_mb: float = bounded(POSITIVE, 64)
    rotate_minutes: float = bounded(POSITIVE, 60)


@dataclass
class AuthConf:
    tokens_file: Optional[str] = None  # None: $FACTORY_SERVE_TOKENS (comma-separated); neither: open


@dataclass
class ServeConf:
    """conf/serve.yaml: the real-time server (``scripts/serve.py``, ``factory.serving.server``)."""

    paths: PathsConf = MISSING
    task_name: str = "serve"
    model: str = MISSING  # NAME, NAME@VERSION or NAME@STAGE
    registry: Optional[str] = None  # None: factory.registry.default_dir()
    backend: str = choices("onnx", "onnx-int8", "torch", default="onnx")
    host: str = "127.0.0.1"
    port: int = bounded(Range(ge=1, le=65535), 8080)
    workers: int = bounded(COUNT, 1)
    serving_dir: str = MISSING
    reload: ReloadConf = field(default_factory=ReloadConf)
    batching: BatchingConf = field(default_factory=BatchingConf)
    limits: LimitsConf = field(default_factory=LimitsConf)
    log: RequestLogConf = field(default_factory=RequestLogConf)
    auth: AuthConf = field(default_factory=AuthConf)


# --- retrain pipeline (factory.monitoring.pipeline) ------------------------------

@dataclass
class GateLimitsConf:
    """The largest value of each fairness figure a challenger may show (``fairness_figures``); None: unchecked."""

    demographic_parity_difference: Optional[float] = bounded(NON_NEGATIVE, None)
    equalized_odds_difference: Optional[float] = bounded(NON_NEGATIVE, None)


@dataclass
class GateFairnessConf:
    sensitive: Optional[str] = None  # the holdout's column of the sensitive attribute; None: no fairness check
    positive_label: Any = 1  # the encoded class (the scored frame's prediction/target) that counts as selected
    min_group_size: int = bounded(COUNT, 30)  # smaller groups are marked, not judged
    limits: GateLimitsConf = field(default_factory=GateLimitsConf)


@dataclass
class PipelineConf:
    """conf/pipeline/<name>.yaml: a retrain-and-promote job (``scripts/retrain.py``)."""

    name: str = MISSING  # outputs/pipeline/<name>/<run id>/pipeline.json
    model: str = MISSING  # the registered model: champion NAME@stage, challenger registered as NAME
    stage: str = choices("production", "staging", default="production")
    train: List[str] = field(default_factory=list)  # the challenger's train overrides (its data and network)
    metric: Optional[str] = None  # None: the challenger config's monitor.metric (val/pr_auc -> pr_auc)
    mode: Optional[str] = choices("max", "min", None, default=None)  # None: the challenger config's monitor.mode
    margin: float = bounded(NON_NEGATIVE, 0.0)
    floor: Optional[float] = bounded(Range(), None)  # no champion at the stage: the least (max) / most (min) to promote
    fairness: GateFairnessConf = field(default_factory=GateFairnessConf)
    exclude_champion_rows: bool = True  # drop holdout rows the champion trained or validated on
    require_disjoint_holdout: bool = False  # True: no promotion over a champion unless that overlap was checked
    drift: bool = True  # the new data's drift against the champion's profile, as information
    report: bool = False  # run conf/report/champion_challenger.yaml on the record afterwards


@dataclass
class RetrainConf:
    pipeline: PipelineConf = MISSING
    paths: PathsConf = MISSING
    task_name: str = "retrain"
    registry: Optional[str] = None  # None: factory.registry.default_dir()
    reports_dir: str = MISSING


# --- monitoring (scripts/monitor.py, factory.monitoring.job) ---------------------

PROBABILITY = Range(ge=0, le=1)


@dataclass
class MonitorDriftConf:
    """conf/monitor/*.yaml ``drift``: the drift monitor's thresholds (``factory.monitoring.drift``) and the alert."""

    alpha: float = bounded(Range(gt=0, lt=1), 0.01)
    psi: float = bounded(NON_NEGATIVE, 0.1)
    wasserstein_std: float = bounded(NON_NEGATIVE, 0.1)
    jensenshannon: float = bounded(PROBABILITY, 0.1)
    missing_delta: float = bounded(PROBABILITY, 0.02)
    unseen_rate: float = bounded(PROBABILITY, 0.01)
    categorical_bins: int = bounded(COUNT, 20)
    max_drifted_features: int = bounded(NON_NEGATIVE, 0)
    show_unseen: int = bounded(NON_NEGATIVE, 0)  # unseen level values named per categorical (0: counts only)


@dataclass
class MonitorQualityConf:
    threshold: float = bounded(PROBABILITY, 0.5)
    every: str = "1d"
    min_auroc: Optional[float] = bounded(PROBABILITY, None)
    min_pr_auc: Optional[float] = bounded(PROBABILITY, None)
    max_drop: Optional[float] = bounded(NON_NEGATIVE, 0.05)
    max_ece: Optional[float] = bounded(PROBABILITY, None)  # off: class-weighted models are miscalibrated by design
    max_rise: Optional[float] = bounded(NON_NEGATIVE, None)


@dataclass
class MonitorFairnessConf:
    sensitive: Optional[str] = None
    min_group_size: int = bounded(COUNT, 30)
    max_demographic_parity_difference: Optional[float] = bounded(PROBABILITY, 0.1)
    max_equalized_odds_difference: Optional[float] = bounded(PROBABILITY, 0.1)


@dataclass
class MonitorChecksConf:
    """conf/monitor/<name>.yaml: which checks run and their alert thresholds."""

    checks: List[str] = field(default_factory=lambda: ["drift", "score", "quality", "fairness"])
    drift: MonitorDriftConf = field(default_factory=MonitorDriftConf)
    quality: MonitorQualityConf = field(default_factory=MonitorQualityConf)
    fairness: MonitorFairnessConf = field(default_factory=MonitorFairnessConf)


@dataclass
class MonitorRootConf:
    """conf/monitor.yaml: a monitoring run (``scripts/monitor.py``)."""

    monitor: MonitorChecksConf = field(default_factory=MonitorChecksConf)
    model: str = MISSING  # NAME, NAME@VERSION or NAME@STAGE
    registry: Optional[str] = None
    window: Optional[str] = None  # None: last_24h of the request log, all of input/data
    input: Optional[Union[str, List[str]]] = None
    data: Any = None
    serving_dir: str = MISSING
    labels: Optional[str] = None
    sensitive: Optional[str] = None
    output_dir: str = MISSING
    batch_rows: int = bounded(COUNT, 65536)
    on_alert: Optional[str] = choices("retrain", None, default=None)
    pipeline: Optional[str] = None
    paths: PathsConf = MISSING
    task_name: str = "monitor"
    seed: int = bounded(SEED, 42)


#: The schema of each top-level config in conf/.
ROOTS: dict[str, type] = {"train": TrainConf, "evaluate": EvaluateConf, "report": ReportRootConf,
                          "serve": ServeConf}
ROOTS["score"] = ScoreConf
ROOTS["monitor"] = MonitorRootConf
ROOTS["retrain"] = RetrainConf
ROOTS["label"] = LabelConf
ROOTS["generate"] = GenerateConf

SCHEMAS.update(TORCH_SCHEMAS)
