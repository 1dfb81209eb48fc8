"""One typed config: configs/default.yaml, then overlay files, then `key=value` overrides, validated once."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from .core.errors import ConfigError
from .core.strict import StrictModel, off_as_text
from .core.task_config import TaskSections

DEFAULT_CONFIG = Path("configs/default.yaml")
EXPERIMENT_DIR = Path("configs/experiment")


class DataConfig(StrictModel):
    root: Path = Path("data")  # folder of the competition files
    # classification: csv (train CSV + images) | folders (one folder per class);
    # detection: coco (COCO JSON) | boxes_csv (one box per row) | voc (Pascal VOC XML folder);
    # segmentation: masks (PNG per image) | rle_csv (run-length encodings) | coco_polygons (COCO segmentation)
    layout: Literal["csv", "folders", "coco", "boxes_csv", "voc", "masks", "rle_csv", "coco_polygons"] = "csv"
    train_csv: str = "train.csv"  # inside root
    train_images: str = "train"  # inside root
    test_images: str = "test"  # inside root
    image_ext: str = ".png"  # appended to ids without an extension
    id_column: str = "id"
    target_columns: list[str] = Field(default_factory=lambda: ["label"])
    multi_label: bool = False
    label_separator: str = " "  # multi-label tags in one column, e.g. "cloudy road"
    classes: list[str] | None = None  # fixes class order; default: sorted labels found in train
    num_classes: int | None = None  # checked against the labels found, when set
    sample_submission: str = "sample_submission.csv"  # inside root
    num_workers: int = Field(default=2, ge=0)  # DataLoader worker processes
    # Decoded images kept between epochs, folds and predict: auto (ram when they fit in 40% of the free memory, else
    # none; decided at train start) | none | ram (filled up front, shared with workers) | disk (.npy files in
    # cache_dir). Classification keeps them resized to model.image_size.
    cache: Literal["auto", "none", "ram", "disk"] = "auto"
    cache_dir: Path = Path("outputs/.cache")
    pseudo_labels: Path | None = None  # CSV of id, path, class probabilities added to every fold's training part
    annotations: str = "annotations.json"  # detection: COCO JSON file or VOC XML folder, inside root
    box_columns: list[str] = Field(default_factory=lambda: ["bbox"])  # boxes_csv: 4 columns, or 1 holding [a,b,c,d]
    box_format: Literal["xywh", "xyxy", "cxcywh"] = "xywh"  # boxes_csv: order of the four numbers
    box_normalized: bool = False  # boxes_csv: numbers are fractions of the image width/height
    out_of_bounds: Literal["clip", "error"] = "clip"  # boxes crossing the image border: clip (counted) or stop
    masks: str = "masks"  # segmentation: folder of mask PNGs named like the images, inside root
    mask_values: Literal["index", "binary"] = "index"  # masks: 0 background, k class k | any non-zero is one class
    rle_column: str = "rle"  # rle_csv (and the sample submission): the run-length column
    rle_order: Literal["F", "C"] = "F"  # pixel numbering: F column-major (Kaggle's usual) | C row-major
    rle_start: int = Field(default=1, ge=0)  # number of the first pixel (Kaggle: 1)


class FoldsConfig(StrictModel):
    strategy: Literal[
        "holdout",
        "kfold",
        "stratified_kfold",
        "multilabel_stratified_kfold",
        "group_kfold",
        "stratified_group_kfold",
    ] = "stratified_kfold"
    n_splits: int = Field(default=5, ge=2)
    holdout_ratio: float = Field(default=0.2, gt=0, lt=1)  # validation share for strategy=holdout
    group_column: str | None = None  # train CSV column for the group strategies
    seed: int = 42
    path: Path | None = None  # fold file; default <run>/folds.csv (share one across experiments)
    train_folds: list[int] | None = None  # train only these folds, e.g. [0]


class ModelConfig(StrictModel):
    backbone: str = "resnet18"  # any timm model name
    pretrained: bool = True
    weights: Path | None = None  # local weights file for offline runs (Kaggle code competitions)
    drop_rate: float = Field(default=0.0, ge=0, lt=1)  # dropout before the classifier
    drop_path_rate: float = Field(default=0.0, ge=0, lt=1)  # stochastic depth
    image_size: int = Field(default=224, ge=8)  # square, pixels
    in_chans: int = Field(default=3, ge=1)
    # Classification: drop a ResNet-style stem's max-pool, which halves small images once more before the first
    # stage (4x the compute); kept by default, as timm builds the stem.
    stem_pool: Literal["keep", "drop"] = "keep"
    grad_checkpointing: bool = False  # recompute activations in the backward pass: less memory, ~20-30% slower


class TrainConfig(StrictModel):
    epochs: int = Field(default=10, ge=1)
    batch_size: int = Field(default=32, ge=1)  # per process; lowered for small data (min_updates_per_epoch)
    # A training set too small for batch_size gets the largest halving of it (down to 8) that gives an epoch this
    # many optimizer updates; None keeps batch_size as it is.
    min_updates_per_epoch: int | None = Field(default=16, ge=1)
    lr_scaling: Literal["sqrt", "linear", "none"] = "sqrt"  # how lr follows a fitted batch: sqrt (AdamW), linear (SGD)
    accumulate_steps: int = Field(default=1, ge=1)  # optimizer step every N batches
    optimizer: str = "adamw"  # any timm optimizer name: adamw, sgd, lamb, lion, ...
    lr: float = Field(default=1e-3, gt=0)  # peak learning rate
    weight_decay: float = Field(default=0.05, ge=0)
    momentum: float = 0.9  # for SGD-like optimizers
    scheduler: Literal["cosine", "cosine_restarts", "step", "multistep", "plateau", "poly", "none"] = "cosine"
    warmup_epochs: float = Field(default=1, ge=0)
    warmup_lr: float = 1e-5
    min_lr: float = 1e-6
    restarts: int = Field(default=2, ge=1)  # cycles for cosine_restarts
    decay_epochs: float = 3  # step: epochs between decays
    decay_milestones: list[int] = Field(default_factory=lambda: [5, 8])  # multistep
    decay_rate: float = 0.1  # step, multistep, plateau
    patience_epochs: int = 2  # plateau
    grad_clip: float | None = None  # max gradient norm
    label_smoothing: float = Field(default=0.0, ge=0, lt=1)
    class_weights: Literal["none", "balanced"] = "none"  # balanced: loss weights from the fold's class counts
    mixup_alpha: float = Field(default=0.0, ge=0)  # batch Mixup (timm); 0 = off
    cutmix_alpha: float = Field(default=0.0, ge=0)  # batch CutMix (timm); 0 = off
    mixup_prob: float = Field(default=1.0, ge=0, le=1)  # share of batches mixed
    mixup_switch_prob: float = Field(default=0.5, ge=0, le=1)  # CutMix instead of Mixup when both are on
    ema: bool = False  # evaluate and save an exponential moving average of the weights
    ema_decay: float = Field(default=0.999, gt=0, lt=1)
    ema_warmup: bool = True  # ramp the decay up over the first updates (timm's use_warmup)
    early_stopping_patience: int | None = None  # evaluations without improvement of the metric
    eval_every: int = Field(default=1, ge=1)  # validate every N epochs (and after the last)
    amp: Literal["auto", "bf16", "fp16", "off"] = (
        "auto"  # auto: bf16 on CUDA from compute capability 8.0, else fp16 + GradScaler
    )
    channels_last: bool = True  # CUDA only
    tf32: bool = True  # TF32 matmuls and convolutions on Ampere and later GPUs
    fused: bool = True  # CUDA: fused Adam/AdamW kernels (other optimizers update all tensors at once, foreach)
    compile: Literal["off", "default", "reduce-overhead", "max-autotune"] = "off"  # torch.compile mode
    compile_backend: str = "inductor"  # torch.compile backend (eager: trace only, for tests)
    checkpoint_every: int = Field(default=1, ge=1)  # write last.pt (with optimizer state) every N epochs and at the end
    # ...but no sooner than this after the last one: short epochs would spend their time writing the optimizer state
    checkpoint_gap_minutes: float | None = Field(default=1.0, ge=0)
    parallel_folds: int = Field(default=1, ge=1)  # folds trained at once, one process each (on GPU k with CUDA)
    # torchrun: a collective waiting this long for a process that stopped answering ends the run (no hang)
    ddp_timeout_minutes: float = Field(default=10, gt=0)
    device: str = "auto"  # auto, cpu, cuda, cuda:1, mps
    deterministic: bool = False
    swa: bool = False  # stochastic weight averaging (torch.optim.swa_utils) from swa_start_epoch; saves swa.pt
    swa_start_epoch: int = Field(default=5, ge=0)  # 0-based epoch from which weights are averaged
    swa_lr: float = Field(default=1e-4, gt=0)  # SWALR's constant learning rate
    snapshots: bool = False  # save snapshot_<k>.pt at the end of each cosine_restarts cycle
    max_steps_per_epoch: int | None = None  # cap batches per epoch (smoke runs)
    max_eval_batches: int | None = None  # cap validation batches (smoke runs)
    # Train for this long instead of counting epochs (train.epochs then only shapes the schedule: warm-up is
    # warmup_epochs/epochs of the budget): the learning rate follows the clock to min_lr when the budget ends, and
    # the last evaluation and checkpoint fit inside.
    time_budget_minutes: float | None = Field(default=None, gt=0)
    time_budget_scope: Literal["fold", "run"] = "fold"  # run: what is left is shared among the folds left
    # run scope: folds the budget cannot give this many optimizer updates each are left out (planned from the
    # time of the first steady training steps). A prior, not a measured optimum: a few hundred updates are what a
    # fine-tune needs to settle.
    time_budget_min_steps: int = Field(default=500, ge=1)
    # A budget that cannot give a fold time_budget_min_steps updates at batch_size halves the batch (down to 8) by
    # what training steps timed before the run say, while the half slows an image by at most 1.25x (HALVING_COST).
    fit_batch_to_budget: bool = True
    eval_every_minutes: float | None = Field(default=None, gt=0)  # also validate once this long has passed

    _off_is_text = field_validator("compile", mode="before")(off_as_text)


class AugConfig(StrictModel):
    # albumentations pipelines: a YAML file saved by A.save or an inline A.to_dict mapping; null = none.
    # Resize to model.image_size comes first, added by the code; normalisation (timm's mean/std) runs on the device.
    train: str | dict[str, Any] | None = "configs/aug/light.yaml"
    valid: str | dict[str, Any] | None = None
    test: str | dict[str, Any] | None = None


class PredictConfig(StrictModel):
    batch_size: int = Field(default=64, ge=1)
    # Checkpoints averaged per fold: best, last, swa, soup, snapshot_1, ... (a snapshot ensemble lists several).
    checkpoints: list[str] = Field(default_factory=lambda: ["best"], min_length=1)
    tta: list[str] = Field(default_factory=lambda: ["identity", "hflip"])  # see tta.py for views
    # oof: keep only the views (in order, from the first) that do not lower the OOF score; off: all of them.
    tta_select: Literal["oof", "off"] = "oof"
    tta_select_images: int = Field(default=1000, ge=1)  # OOF images the choice is scored on (a random sample)

    _off_is_text = field_validator("tta_select", mode="before")(off_as_text)


class SubmitConfig(StrictModel):
    format: Literal["auto", "labels", "probabilities"] = "auto"  # auto: follow the sample submission
    threshold: float = Field(default=0.5, ge=0, le=1)  # multi-label labels
    predictions: Path | None = None  # default <run>/predictions/test.csv


class EnsembleConfig(StrictModel):
    members: list[Path] = Field(default_factory=list)  # run folders (or folders with oof.csv, predictions/test.csv)
    method: str = "auto"  # the task's blend_methods (tasks/<task>/__init__.py); auto: the task's first
    weights: Literal["equal", "fit", "greedy"] | list[float] = "equal"  # fit: scipy on OOF; greedy: Caruana
    greedy_iterations: int = Field(default=20, ge=1)
    # Detection: the IoU that fuses (WBF, NMW) or suppresses (NMS, soft-NMS) boxes of different members, and the
    # score under which a member's box is left out; fit: the grid point with the best blended OOF metric.
    iou_thr: Annotated[float, Field(gt=0, le=1)] | Literal["fit"] = "fit"
    skip_box_thr: Annotated[float, Field(ge=0, lt=1)] | Literal["fit"] = "fit"
    require_test: bool = True  # members must have test predictions (false: OOF study only)


class SoupConfig(StrictModel):
    method: Literal["uniform", "greedy"] = "greedy"  # greedy: add a checkpoint only if validation does not drop
    checkpoints: list[str] = Field(default_factory=lambda: ["best", "last"], min_length=1)  # names in fold folders
    runs: list[Path] = Field(default_factory=list)  # other runs of the same architecture: their fold best.pt
    update_bn: bool = True  # recompute BatchNorm statistics of averaged weights on the fold's training images


class PseudoConfig(StrictModel):
    source: Path | None = None  # test predictions to label from; default <run>/predictions/test.csv
    # Classification: top probability to keep an image; detection: score to keep a box; segmentation: winning
    # probability under which a pixel becomes the ignore index
    threshold: float = Field(default=0.9, ge=0, le=1)
    uncertain: float = Field(default=0.3, ge=0, le=1)  # detection: a box in [uncertain, threshold) drops its image
    soft: bool = False  # classification: train on probabilities; detection: keep each box with its score's odds
    rounds: int = Field(default=1, ge=1)


class AnalyzeConfig(StrictModel):
    examples: int = Field(default=8, ge=1)  # images per grid (wrong, right, Grad-CAM)
    max_images: int = Field(default=2000, ge=1)  # cap for attribute and transformation analysis
    cam_method: Literal["gradcam", "gradcam++", "eigencam"] = "gradcam"
    cam_layer: str | None = None  # dotted module path; default chosen per timm family
    label_noise_threshold: float = Field(default=0.1, ge=0, le=1)  # OOF probability of the given label
    shift_warning: float = Field(default=0.1, ge=0, le=1)  # total variation distance that raises a warning
    score_threshold: float = Field(default=0.5, ge=0, le=1)  # detection: boxes counted as predicted (misses, FPs)
    boundary_width: int = Field(default=3, ge=1)  # segmentation: pixels from the true edge that count as boundary


class SearchDimension(StrictModel):
    """One config key's distribution in a search: float (log for rates), int, or categorical."""

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False  # sample the log of the value uniformly (learning rates, weight decay)
    step: float | None = None  # float/int: a grid step
    choices: list[Any] | None = None  # categorical

    @model_validator(mode="after")
    def _complete(self) -> SearchDimension:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical dimension needs a non-empty `choices` list")
            return self
        if self.low is None or self.high is None:
            raise ValueError(f"a {self.type} dimension needs `low` and `high`")
        if not self.low < self.high:
            raise ValueError(f"empty range: low {self.low} is not below high {self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"log scale needs low > 0, got {self.low}")
        return self


class TuneConfig(StrictModel):
    n_trials: int = Field(default=20, ge=1)  # trials of the whole study (every process together)
    timeout_minutes: float | None = Field(default=None, gt=0)  # this process stops starting trials after it
    folds: list[int] = Field(default_factory=lambda: [0], min_length=1)  # trained per trial; the objective averages
    sampler: Literal["tpe", "random"] = "tpe"
    pruner: Literal["median", "hyperband", "none"] = "median"  # stops trials whose validation lags
    startup_trials: int = Field(default=3, ge=0)  # trials run in full before the pruner and TPE take over
    prune_after: int = Field(default=2, ge=1)  # validations every trial gets before the pruner may stop it
    storage: str | None = None  # default sqlite:///<run>/tune/study.db; a database URL shares a study across machines
    # A worker's trial whose heartbeat is 4 of these old is failed by another worker and run once more
    heartbeat_seconds: float = Field(default=30, ge=1)
    study_name: str | None = None  # default: the experiment name
    seed: int = 42
    overlay: Path = Path("configs/experiment/tuned.yaml")  # the best trial's settings: run -e tuned
    space: dict[str, SearchDimension | None] = Field(default_factory=dict)  # config key -> distribution (null: off)


class ExportConfig(StrictModel):
    dest: Path | None = None  # default <run>/export: dataset/ (upload as a Kaggle dataset) and notebook/
    fp16: bool = True  # checkpoints in half precision: half the size; predictions move by fp16 rounding only
    user: str | None = None  # Kaggle user of the dataset and notebook ids; default $KAGGLE_USERNAME
    competition: str | None = None  # competition slug: the notebook's data source, /kaggle/input/<slug>
    wheels: list[str] = Field(default_factory=list)  # bundled besides those the image manifest shows it lacks
    image_manifest: Path = Path("configs/kaggle_image.txt")  # the notebook image's Python, platform and packages
    time_limit_hours: float | None = Field(default=9.0, gt=0)  # the competition's notebook limit: warn past it
    test_images: int | None = Field(default=None, ge=1)  # hidden test set size for the projection; default local


class WandbConfig(StrictModel):
    project: str = "competition"
    entity: str | None = None
    group: str | None = None  # W&B group; default the experiment (tune groups trials under the study)
    mode: Literal["offline", "online", "disabled"] = "offline"
    tags: list[str] = Field(default_factory=list)


class SharedSections(StrictModel):
    """The sections every task has; the task's own (detection.*, segmentation.*) are core/task_config.py's."""

    task: Literal["classification", "detection", "segmentation"] = "classification"
    experiment: str = "baseline"  # run folder name under output_dir
    output_dir: Path = Path("outputs")
    seed: int = 42
    seeds: list[int] | None = None  # a seed ensemble: train/run once per seed into <experiment>-seed<k>
    # classification: accuracy | f1_macro | log_loss | roc_auc | qwk;
    # detection: map (COCO mAP@[.5:.95]) | map50 | kaggle_map (mean precision over detection.iou_thresholds);
    # segmentation: dice | iou (per image and class, empty prediction of an empty mask = 1, then averaged)
    metric: Literal[
        "accuracy", "f1_macro", "log_loss", "roc_auc", "qwk", "map", "map50", "kaggle_map", "dice", "iou"
    ] = "accuracy"
    data: DataConfig = Field(default_factory=DataConfig)
    folds: FoldsConfig = Field(default_factory=FoldsConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    aug: AugConfig = Field(default_factory=AugConfig)
    predict: PredictConfig = Field(default_factory=PredictConfig)
    submit: SubmitConfig = Field(default_factory=SubmitConfig)
    ensemble: EnsembleConfig = Field(default_factory=EnsembleConfig)
    soup: SoupConfig = Field(default_factory=SoupConfig)
    pseudo: PseudoConfig = Field(default_factory=PseudoConfig)
    analyze: AnalyzeConfig = Field(default_factory=AnalyzeConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    wandb: WandbConfig = Field(default_factory=WandbConfig)


class Config(TaskSections, SharedSections):  # in this order, the task's section comes last in config.yaml
    @field_validator("experiment")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not value or "/" in value or value.startswith("."):
            raise ValueError("must be a plain folder name")
        return value

    @model_validator(mode="after")
    def _fits_together(self) -> Config:
        """Settings that contradict each other fail when the config loads, not after training (what the task cannot
        use is its TaskSpec.check, run wherever a command's settings load)."""
        if self.train.time_budget_minutes is not None and self.train.scheduler == "plateau":
            raise ValueError(
                "train.scheduler=plateau follows validation scores, not the clock: with train.time_budget_minutes "
                "use cosine, cosine_restarts, poly, step, multistep or none"
            )
        return self


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text())
    except FileNotFoundError as error:
        raise ConfigError(f"config file {path}: not found") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path}: not valid YAML ({' '.join(str(error).split())})") from error
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path}: expected a mapping at the top level")
    return loaded


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _key_path(key: str) -> list[str]:
    """A dotted override key as nested keys. tune.space is keyed by dotted config keys, so
    `tune.space.train.lr.low` is ["tune", "space", "train.lr", "low"] and `tune.space.train.lr` keeps "train.lr"."""
    parts = key.split(".")
    if parts[:2] != ["tune", "space"] or len(parts) < 4:
        return parts
    rest = parts[2:]
    if rest[-1] in SearchDimension.model_fields:
        return ["tune", "space", ".".join(rest[:-1]), rest[-1]]
    return ["tune", "space", ".".join(rest)]


def parse_override(text: str) -> dict[str, Any]:
    """`train.lr=3e-4` into {"train": {"lr": 0.0003}}; the value is read as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r}: expected key=value, e.g. train.epochs=5")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as error:
        detail = " ".join(str(error).split())
        raise ConfigError(f"override {key.strip()}: the value {raw!r} is not valid YAML ({detail})") from error
    nested: dict[str, Any] = {}
    cursor = nested
    parts = _key_path(key.strip())
    for part in parts[:-1]:
        cursor = cursor.setdefault(part, {})
    cursor[parts[-1]] = value
    return nested


def _known_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        dotted = f"{prefix}{name}"
        keys.append(dotted)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys.extend(_known_keys(annotation, f"{dotted}."))
    return keys


def known_keys() -> list[str]:
    """Every dotted config key, e.g. `train.lr`."""
    return _known_keys(Config)


# Names other trainers (timm, Lightning, Ultralytics, Keras) give the keys, by the last part of a dotted key:
# `learning_rate=3e-4` and `train.learning_rate=3e-4` both mean train.lr.
_ALIAS_NAMES = {
    "train.lr": ("learning_rate", "learningrate", "lr0", "base_lr", "lr_rate"),
    "train.batch_size": ("bs", "batch", "batchsize", "train_batch_size", "per_device_train_batch_size"),
    "model.image_size": ("img_size", "imgsz", "image_size", "img", "size", "resolution", "input_size", "imsize"),
    "train.epochs": ("epoch", "n_epochs", "num_epochs", "max_epochs", "num_train_epochs"),
    "train.weight_decay": ("wd", "weightdecay", "l2"),
    "model.backbone": ("arch", "architecture", "model", "model_name", "network", "net", "encoder"),
    "model.drop_rate": ("dropout", "drop", "dropout_rate"),
    "model.drop_path_rate": ("drop_path", "stochastic_depth"),
    "data.num_workers": ("workers", "n_workers", "num_worker"),
    "folds.n_splits": ("n_folds", "nfolds", "num_folds", "kfold", "splits"),
    "train.optimizer": ("opt", "optim"),
    "train.scheduler": ("sched", "lr_scheduler", "schedule"),
    "train.warmup_epochs": ("warmup", "warmup_epoch"),
    "train.label_smoothing": ("smoothing", "label_smooth"),
    "train.mixup_alpha": ("mixup",),
    "train.cutmix_alpha": ("cutmix",),
    "train.early_stopping_patience": ("patience", "early_stopping"),
    "train.accumulate_steps": ("grad_accum", "accumulate", "accumulation_steps", "gradient_accumulation_steps"),
    "train.grad_clip": ("clip_grad", "gradient_clip", "max_grad_norm", "clip_grad_norm"),
    "train.amp": ("fp16", "mixed_precision", "precision", "half"),
    "train.device": ("gpu", "gpus", "accelerator"),
    "data.num_classes": ("n_classes", "nc", "classes_count"),
    "data.root": ("data_dir", "data_root", "dataset"),
    "predict.tta": ("tta_views",),
}
KEY_ALIASES = {name: key for key, names in _ALIAS_NAMES.items() for name in names}


def suggest_key(key: str, keys: list[str] | None = None) -> str | None:
    """The config key an unknown dotted `key` most likely meant: a field of its section that it begins
    (`segmentation.arch`), an alias of its last part (in the key's own section when that section has the field, so
    `predict.bs` means predict.batch_size), else the known key whose last part is closest to it
    (`train.learning_rate` is compared as `learning_rate`), else the closest whole key."""
    keys = known_keys() if keys is None else keys
    *parents, leaf = key.split(".")
    leaf = leaf.lower().replace("-", "_")
    section = ".".join(parents)
    if section and len(leaf) >= 3:
        depth = key.count(".")
        begun = [known for known in keys if known.startswith(f"{section}.{leaf}") and known.count(".") == depth]
        if begun:
            return begun[0]
    target = KEY_ALIASES.get(leaf)
    if target is not None:
        in_section = f"{section}.{target.rsplit('.', 1)[-1]}" if section else ""
        return in_section if in_section in keys else target
    by_leaf: dict[str, list[str]] = {}
    for known in keys:
        by_leaf.setdefault(known.rsplit(".", 1)[-1], []).append(known)
    for close in difflib.get_close_matches(leaf, list(by_leaf), n=1, cutoff=0.6):
        matches = by_leaf[close]  # several sections may share a field name: the key's own section first
        return next((m for m in matches if m.rsplit(".", 1)[0] == section), matches[0])
    close = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
    return close[0] if close else None


def unknown_key_message(key: str, keys: list[str] | None = None) -> str:
    """One line naming an unknown config key and what it most likely meant."""
    suggestion = suggest_key(key, keys)
    return f"config key '{key}' is not known" + (f"; did you mean '{suggestion}'?" if suggestion else "")


def _describe(error: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"])
    if not key:  # a check across several keys (Config._fits_together): its message names them
        return str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return unknown_key_message(key)
    return f"config key '{key}': {error['msg'].lower()}, got {error.get('input')!r}"


def validate_config(raw: dict[str, Any]) -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_describe(error.errors()[0])) from error


def load_config(
    overrides: list[str] | None = None,
    *,
    config_files: list[Path] | None = None,
    experiment: str | None = None,
    base: Path = DEFAULT_CONFIG,
) -> Config:
    """Build the config: base YAML, overlay files (an experiment name means configs/experiment/NAME.yaml)."""
    raw = _read_yaml(base) if base.exists() else {}
    for overlay in config_files or []:
        raw = deep_merge(raw, _read_yaml(Path(overlay)))
    if experiment:
        raw = deep_merge(raw, experiment_overlay(experiment))
    for override in overrides or []:
        raw = deep_merge(raw, parse_override(override))
    return validate_config(raw)


def experiment_overlay(experiment: str) -> dict[str, Any]:
    """configs/experiment/NAME.yaml (a path to a .yaml file is taken as it is); the run folder is named after the
    experiment unless its file names one."""
    path = Path(experiment)
    if path.suffix not in (".yaml", ".yml"):
        path = EXPERIMENT_DIR / f"{experiment}.yaml"
    return {"experiment": path.stem, **_read_yaml(path)}


def explicit_changes(overrides: list[str] | None = None, config_files: list[Path] | None = None) -> dict[str, Any]:
    """What the user asked for in this command (overlay files, then `key=value` overrides), as nested changes."""
    changes: dict[str, Any] = {}
    for overlay in config_files or []:
        changes = deep_merge(changes, _read_yaml(Path(overlay)))
    for override in overrides or []:
        changes = deep_merge(changes, parse_override(override))
    return changes


def with_overrides(config: Config, changes: dict[str, Any]) -> Config:
    """A validated copy of `config` with nested `changes` merged in (e.g. {"train": {"epochs": 3}})."""
    return validate_config(deep_merge(config.model_dump(mode="json"), changes))


def dotted_value(config: BaseModel, key: str) -> Any:
    """The value of a dotted key such as `model.image_size` (JSON form, so paths compare as text)."""
    value: Any = config.model_dump(mode="json")
    for part in key.split("."):
        value = value[part]
    return value


def config_to_yaml(config: Config) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
