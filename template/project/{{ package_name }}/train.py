"""Training: `train(config) -> metrics` runs each fold, keeps checkpoints, history and OOF predictions in the
run folder, and reports CV mean ± std. The loop knows nothing of the task: the task object does."""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.scheduler.scheduler import Scheduler
from timm.utils import ModelEmaV3
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import SWALR, AveragedModel, update_bn
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm.auto import tqdm

from .config import Config, TrainConfig, load_config
from .core.augment import InputNormaliser, load_augmentations, redirect_caches, start_image_cache
from .core.data import LabelledTable, with_pseudo_labels
from .core.distributed import Runtime, all_gather, barrier, init_runtime, shutdown
from .core.errors import ConfigError, ModelError
from .core.perf import (
    EpochBatches,
    EpochTimes,
    Eta,
    GpuUtilisation,
    compile_model,
    configure_backends,
    enable_grad_checkpointing,
    original_module,
    peak_memory_mb,
    reset_peak_memory,
)
from .core.runs import (
    RunPaths,
    check_same_run_settings,
    move_previous_training,
    read_json,
    run_lock,
    save_resolved_config,
    save_torch,
    write_csv,
    write_json,
)
from .core.tracking import create_tracker
from .folds import folds_to_train, read_folds
from .tasks import Task, create_task, read_train_table


def seed_everything(seed: int, deterministic: bool = False) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """bf16 or fp16 for autocast; `auto` turns AMP on for CUDA only."""
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


# timm names of torch optimizers with a fused CUDA kernel (one launch for every parameter's update).
FUSED_OPTIMIZERS = {"adam", "adamw"}


def optimizer_kwargs(config: TrainConfig, on_cuda: bool) -> dict[str, Any]:
    """timm's create_optimizer_v2 arguments: on CUDA, Adam and AdamW fused (train.fused), others multi-tensor."""
    kwargs: dict[str, Any] = {
        "opt": config.optimizer,
        "lr": config.lr,
        "weight_decay": config.weight_decay,
        "momentum": config.momentum,
    }
    if on_cuda and config.fused and config.optimizer.lower() in FUSED_OPTIMIZERS:
        kwargs["fused"] = True
    elif on_cuda:
        kwargs["foreach"] = True
    return kwargs


def create_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    on_cuda = any(parameter.is_cuda for parameter in model.parameters())
    try:
        return create_optimizer_v2(model, **optimizer_kwargs(config, on_cuda))
    except (AssertionError, ValueError) as error:
        raise ConfigError(f"train.optimizer '{config.optimizer}': not a timm optimizer ({error})") from error


def create_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, updates_per_epoch: int, maximize: bool
) -> Scheduler | None:
    """A timm scheduler stepped per update (per epoch for plateau), or None."""
    if config.scheduler == "none":
        return None
    name, epochs, cycles = config.scheduler, config.epochs, 1
    if name == "cosine_restarts":
        name, cycles = "cosine", config.restarts
        epochs = math.ceil(config.epochs / cycles)
    per_epoch = name == "plateau"
    scheduler, _ = create_scheduler_v2(
        optimizer,
        sched=name,
        num_epochs=epochs,
        decay_epochs=config.decay_epochs,
        decay_milestones=config.decay_milestones,
        decay_rate=config.decay_rate,
        patience_epochs=config.patience_epochs,
        min_lr=config.min_lr,
        warmup_lr=config.warmup_lr,
        warmup_epochs=config.warmup_epochs,
        cycle_limit=cycles,
        plateau_mode="max" if maximize else "min",
        step_on_epochs=per_epoch,
        updates_per_epoch=updates_per_epoch,
    )
    return scheduler


EvaluationHook = Callable[[int, int, float], None]  # (fold, epoch, score) after each validation
PROGRESS_EVERY = 10  # steps between progress-bar refreshes


@dataclass
class FoldState:
    """What a fold needs to continue after an interruption (saved as last.pt)."""

    epoch: int = 0  # epochs completed
    num_updates: int = 0
    best_score: float | None = None
    best_epoch: int = -1
    stale_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


def seed_worker(worker_id: int) -> None:
    """A loader worker's own augmentation stream. Every worker starts with a copy of the parent's albumentations
    and numpy generators, so without this they would repeat each other's random crops and flips; torch's
    per-worker seed comes from the loader's generator, so runs stay reproducible."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    transform = getattr(torch.utils.data.get_worker_info().dataset, "transform", None)
    if hasattr(transform, "set_random_seed"):
        transform.set_random_seed(seed)


def _loader(
    dataset: Dataset, runtime: Runtime, batch_size: int, workers: int, shuffle: bool, seed: int, collate_fn: Any = None
) -> DataLoader:
    sampler = None
    if runtime.distributed:
        sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=False)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=workers,
        pin_memory=runtime.device.type == "cuda",
        drop_last=shuffle and len(dataset) > batch_size * runtime.world_size,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(seed),
        worker_init_fn=seed_worker,
        collate_fn=collate_fn,
    )


def train_one_epoch(
    model: torch.nn.Module,
    loader: DataLoader,
    task: Task,
    optimizer: torch.optim.Optimizer,
    *,
    runtime: Runtime,
    config: TrainConfig,
    scheduler: Any = None,
    scaler: torch.amp.GradScaler | None = None,
    ema: ModelEmaV3 | None = None,
    mixup: Any = None,
    amp_dtype: torch.dtype | None = None,
    num_updates: int = 0,
    description: str = "train",
    on_first_update: Callable[[], None] | None = None,
    normalise: InputNormaliser | None = None,
    batches: Iterator[Any] | None = None,
) -> tuple[float, int, int, float]:
    """One pass over `loader` (or `batches`, its epoch already started) with accumulation, clipping, AMP, EMA;
    returns (mean loss, updates so far, images, seconds from the first batch's arrival to the end: the steps'
    time, without the loader's start-up).
    The progress bar shows loss, learning rate and images/s, refreshed every few steps (reading the loss waits
    for the GPU, so not every step)."""
    model.train()
    device = runtime.device
    channels_last = config.channels_last and device.type == "cuda"
    total_steps = len(loader) if config.max_steps_per_epoch is None else min(len(loader), config.max_steps_per_epoch)
    accumulate = config.accumulate_steps
    running_loss = torch.zeros((), device=device)
    optimizer.zero_grad(set_to_none=True)
    progress = tqdm(
        loader if batches is None else batches,
        total=total_steps,
        desc=description,
        leave=False,
        disable=True if not runtime.is_main else None,
    )
    step, seen, started = 0, 0, None
    for step, batch in enumerate(progress):
        if step >= total_steps:
            break
        started = started or time.perf_counter()
        images, targets = task.to_device(batch, device)
        seen += len(images)
        if normalise is not None:
            images = normalise(images)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        if mixup is not None and len(images) % 2 == 0:  # timm mixes a batch with its reverse: even sizes only
            images, targets = mixup(images, targets)
        update_now = (step + 1) % accumulate == 0 or step + 1 == total_steps
        # DDP all-reduces gradients only on the step that updates the weights.
        sync = nullcontext() if update_now or not runtime.distributed else model.no_sync()
        with sync:
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                loss = task.training_loss(model, images, targets)
            scaled = loss / accumulate
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
        running_loss += loss.detach()
        if update_now:
            if config.grad_clip is not None:
                if scaler is not None:
                    scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            num_updates += 1
            if on_first_update is not None and num_updates == 1:
                on_first_update()
            if scheduler is not None:
                scheduler.step_update(num_updates=num_updates)
            if ema is not None:
                ema.update(model, step=num_updates)
        if (step + 1) % PROGRESS_EVERY == 0 and not progress.disable:
            rate = seen / max(time.perf_counter() - started, 1e-9)
            lr = optimizer.param_groups[0]["lr"]
            progress.set_postfix(loss=f"{running_loss.item() / (step + 1):.4f}", lr=f"{lr:.2e}", img_s=f"{rate:.0f}")
    loss = float(running_loss.item()) / max(step + 1, 1)  # .item() waits for the GPU: the steps are done
    seconds = time.perf_counter() - started if started is not None else 0.0
    progress.close()
    return loss, num_updates, seen, seconds


@torch.inference_mode()
def evaluate(
    model: torch.nn.Module,
    loader: DataLoader,
    task: Task,
    *,
    runtime: Runtime,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    max_batches: int | None = None,
    normalise: InputNormaliser | None = None,
) -> tuple[float, np.ndarray, np.ndarray]:
    """(mean loss, per-image outputs, dataset indices), gathered from every rank; the loss is NaN for models
    that give none in evaluation mode (torchvision detectors)."""
    model.eval()
    device = runtime.device
    order = list(loader.sampler) if isinstance(loader.sampler, DistributedSampler) else None
    outputs, losses, seen = [], [], 0
    batches = loader if max_batches is None else (batch for i, batch in enumerate(loader) if i < max_batches)
    for batch in tqdm(batches, desc="valid", leave=False, disable=True if not runtime.is_main else None):
        images, targets = task.to_device(batch, device)
        if normalise is not None:
            images = normalise(images)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            loss, batch_outputs = task.evaluate_batch(model, images, targets)
        losses.append(math.nan if loss is None else loss * len(images))
        outputs.append(batch_outputs)
        seen += len(images)
    local_outputs = np.concatenate(outputs) if outputs else np.zeros((0, len(task.classes)))
    local_indices = np.asarray(order[:seen] if order is not None else range(seen))
    parts = all_gather(runtime, (local_indices, local_outputs, sum(losses), seen))
    indices = np.concatenate([part[0] for part in parts])
    gathered = np.concatenate([part[1] for part in parts])
    # DistributedSampler pads shards with repeated samples: keep each index once.
    indices, first = np.unique(indices, return_index=True)
    loss = float(sum(part[2] for part in parts)) / max(sum(part[3] for part in parts), 1)
    return loss, gathered[first], indices


def checkpoint_meta(config: Config, task: Task, mean: tuple, std: tuple) -> dict[str, Any]:
    return {
        "task": config.task,
        "backbone": config.model.backbone,
        "classes": task.classes,
        "multi_label": config.data.multi_label,
        "image_size": config.model.image_size,
        "in_chans": config.model.in_chans,
        "mean": list(mean),
        "std": list(std),
    }


def fold_loaders(
    config: Config,
    task: Task,
    table: LabelledTable,
    train_index: np.ndarray,
    valid_index: np.ndarray,
    *,
    runtime: Runtime,
    training_targets: np.ndarray | None = None,
    seed: int = 0,
) -> tuple[DataLoader, DataLoader]:
    """The training loader (augmented, shuffled) and the validation loader of one fold."""
    train_augmentations = load_augmentations(config.aug.train, "aug.train")
    redirect_caches(train_augmentations, RunPaths.from_config(config).root / "augraphy")
    train_transform = task.create_transform(train_augmentations, train=True)
    if hasattr(train_transform, "set_random_seed"):  # albumentations draws from its own generator, not numpy's
        train_transform.set_random_seed(seed)
    valid_transform = task.create_transform(load_augmentations(config.aug.valid, "aug.valid"), train=False)
    image_paths = table.frame["path"].to_numpy()
    targets = table.targets if training_targets is None else training_targets
    train_set = task.create_dataset(list(image_paths[train_index]), targets[train_index], train_transform, train=True)
    valid_set = task.create_dataset(list(image_paths[valid_index]), table.targets[valid_index], valid_transform)
    batch, workers = config.train.batch_size, config.data.num_workers
    train_loader = _loader(train_set, runtime, batch, workers, True, seed, task.collate_fn)
    valid_loader = _loader(valid_set, runtime, batch, workers, False, config.seed, task.collate_fn)
    return train_loader, valid_loader


def train_fold(
    config: Config,
    task: Task,
    table: LabelledTable,
    folds: np.ndarray,
    fold: int,
    *,
    runtime: Runtime,
    paths: RunPaths,
    resume: bool = False,
    training_targets: np.ndarray | None = None,
    on_evaluation: EvaluationHook | None = None,
    eta: Eta | None = None,
) -> dict[str, Any]:
    """Train one fold; write last.pt every epoch, best.pt and OOF on improvement, metrics.json at the end.
    `on_evaluation(fold, epoch, score)` runs after each validation's files are written (tune prunes there).

    `training_targets` replaces the table's targets for training rows (soft pseudo-labels); validation always
    scores against the table's own labels.
    """
    train_config = config.train
    seed_everything(config.seed + fold, train_config.deterministic)
    train_index = np.flatnonzero(folds != fold)
    valid_index = np.flatnonzero(folds == fold)

    model = task.create_model()
    mean, std = task.normalisation(model)
    meta = checkpoint_meta(config, task, mean, std)
    normalise = InputNormaliser(mean, std, runtime.device)
    train_loader, valid_loader = fold_loaders(
        config,
        task,
        table,
        train_index,
        valid_index,
        runtime=runtime,
        training_targets=training_targets,
        seed=config.seed + fold,
    )

    device = runtime.device
    channels_last = train_config.channels_last and device.type == "cuda"
    configure_backends(
        device,
        tf32=train_config.tf32,
        deterministic=train_config.deterministic,
        fixed_shapes=not getattr(task, "variable_input_size", False),
    )
    if config.model.grad_checkpointing and not enable_grad_checkpointing(model):
        print(f"warning: model.grad_checkpointing: {type(model).__name__} has no timm network to checkpoint; ignored")
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    amp_dtype = autocast_dtype(train_config.amp, device)
    scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None
    optimizer = create_optimizer(model, train_config)
    steps = (
        len(train_loader)
        if train_config.max_steps_per_epoch is None
        else min(len(train_loader), train_config.max_steps_per_epoch)
    )
    updates_per_epoch = max(math.ceil(steps / train_config.accumulate_steps), 1)
    scheduler = create_scheduler(optimizer, train_config, updates_per_epoch, task.metric.higher_is_better)
    ema = None
    if train_config.ema:
        ema = ModelEmaV3(model, decay=train_config.ema_decay, use_warmup=train_config.ema_warmup)

    if train_config.class_weights == "balanced":
        task.balance_classes(table.targets[train_index], device)
    mixup = task.create_mixup()
    swa_model = AveragedModel(model) if train_config.swa else None
    swa_scheduler = SWALR(optimizer, swa_lr=train_config.swa_lr) if train_config.swa else None
    cycle_epochs = math.ceil(train_config.epochs / train_config.restarts)
    save_snapshots = train_config.snapshots and train_config.scheduler == "cosine_restarts"

    state = FoldState()
    last_path = paths.checkpoint(fold, "last")
    if resume and last_path.is_file():
        saved = torch.load(last_path, map_location=device, weights_only=True)
        saved_backbone = saved.get("meta", {}).get("backbone")
        if saved_backbone != config.model.backbone:
            raise ModelError(
                f"{last_path}: --resume of a '{saved_backbone}' checkpoint but model.backbone is "
                f"'{config.model.backbone}'; resume with the run's settings or train without --resume"
            )
        try:
            model.load_state_dict(saved["model"])
        except RuntimeError as error:
            raise ModelError(
                f"{last_path}: --resume weights do not fit the model ({str(error).splitlines()[0][:160]}); "
                "resume with the run's settings or train without --resume"
            ) from error
        optimizer.load_state_dict(saved["optimizer"])
        if scheduler is not None and saved.get("scheduler"):
            scheduler.load_state_dict(saved["scheduler"])
        if scaler is not None and saved.get("scaler"):
            scaler.load_state_dict(saved["scaler"])
        if ema is not None and saved.get("ema"):
            ema.module.load_state_dict(saved["ema"])
        if swa_model is not None and saved.get("swa"):
            swa_model.load_state_dict(saved["swa"])
        state = FoldState(**saved["state"])
        if runtime.is_main:
            print(f"fold {fold}: resuming after epoch {state.epoch}")

    if runtime.distributed:
        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    compile_mode = train_config.compile
    if compile_mode != "off" and config.model.grad_checkpointing:
        # Dynamo replays batch-norm buffer updates inside timm's checkpointed blocks and autograd then fails.
        print("warning: train.compile is left off with model.grad_checkpointing (they do not combine here)")
        compile_mode = "off"
    model = compile_model(model, compile_mode, train_config.compile_backend)
    epochs = EpochBatches(train_loader)
    if state.epoch < train_config.epochs:  # workers decode the first batches while the tracker starts
        epochs.start(state.epoch)
    tracker = create_tracker(config, paths.root, f"fold{fold}", "train") if runtime.is_main else None
    utilisation = GpuUtilisation(device)
    first_update: dict[str, float] = {}
    for epoch in range(state.epoch, train_config.epochs):
        times = EpochTimes()
        reset_peak_memory(device)
        utilisation.start()
        in_swa = swa_model is not None and epoch >= train_config.swa_start_epoch
        train_loss, state.num_updates, times.images, times.train = train_one_epoch(
            model,
            train_loader,
            task,
            optimizer,
            runtime=runtime,
            config=train_config,
            scheduler=None if in_swa else scheduler,
            scaler=scaler,
            ema=ema,
            mixup=mixup,
            amp_dtype=amp_dtype,
            num_updates=state.num_updates,
            description=f"fold {fold} epoch {epoch + 1}/{train_config.epochs}",
            on_first_update=lambda: first_update.setdefault("unix", time.time()),
            normalise=normalise,
            batches=epochs.take(epoch),
        )
        if epoch + 1 < train_config.epochs:
            epochs.start(epoch + 1)  # the next epoch's first batches are decoded during validation and saving
        eval_model = ema.module if ema is not None else model
        # Evaluation can cost as much as training (detection): every eval_every epochs and always the last.
        evaluate_now = (epoch + 1) % train_config.eval_every == 0 or epoch + 1 == train_config.epochs
        valid_loss, score, improved = math.nan, math.nan, False
        if evaluate_now:
            valid_started = time.perf_counter()
            valid_loss, probabilities, indices = evaluate(
                eval_model,
                valid_loader,
                task,
                runtime=runtime,
                amp_dtype=amp_dtype,
                channels_last=channels_last,
                max_batches=train_config.max_eval_batches,
                normalise=normalise,
            )
            score = task.score(table.targets[valid_index][indices], probabilities)
            times.valid = time.perf_counter() - valid_started
            improved = task.metric.is_improvement(score, state.best_score)
            state.stale_epochs = 0 if improved else state.stale_epochs + 1
            if improved:
                state.best_score, state.best_epoch = score, epoch
        if in_swa:
            swa_model.update_parameters(original_module(model))
            swa_scheduler.step()
        elif scheduler is not None and (evaluate_now or train_config.scheduler != "plateau"):
            scheduler.step(epoch + 1, score)
        state.epoch = epoch + 1
        patience = train_config.early_stopping_patience
        stopping = patience is not None and state.stale_epochs >= patience
        last_epoch = stopping or epoch + 1 == train_config.epochs
        row = {
            "epoch": epoch + 1,
            "lr": optimizer.param_groups[0]["lr"],
            "train_loss": train_loss,
            "valid_loss": valid_loss,
            config.metric: score,
            "peak_mem_mb": peak_memory_mb(device),
            "gpu_util": utilisation.stop(),
            **times.columns(),
        }
        state.history.append(row)
        if runtime.is_main:
            checkpoint_started = time.perf_counter()
            if improved:
                weights = original_module(eval_model).state_dict()
                save_torch(
                    paths.checkpoint(fold, "best"), {"model": weights, "meta": meta, "epoch": epoch + 1, "score": score}
                )
                task.write_predictions(paths.fold_oof(fold), table.ids[valid_index][indices], probabilities, fold)
            # last.pt holds the optimizer state too: written every checkpoint_every epochs and at the end.
            if (epoch + 1) % train_config.checkpoint_every == 0 or last_epoch:
                save_torch(
                    last_path,
                    {
                        "model": original_module(model).state_dict(),
                        "ema": ema.module.state_dict() if ema is not None else None,
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict() if scheduler is not None else None,
                        "scaler": scaler.state_dict() if scaler is not None else None,
                        "swa": swa_model.state_dict() if swa_model is not None else None,
                        "state": state.__dict__,
                        "meta": meta,
                    },
                )
            if save_snapshots and (epoch + 1) % cycle_epochs == 0:
                weights = original_module(eval_model).state_dict()
                snapshot = {"model": weights, "meta": meta, "epoch": epoch + 1, "score": score}
                save_torch(paths.checkpoint(fold, f"snapshot_{(epoch + 1) // cycle_epochs}"), snapshot)
            times.checkpoint = time.perf_counter() - checkpoint_started
        row.update(times.columns())  # now with the checkpoint write; last.pt keeps the row as it was before it
        if eta is not None:
            eta.add(row["seconds"])
        if runtime.is_main:
            write_csv(paths.history(fold), pd.DataFrame(state.history))
            tracker.log({key: value for key, value in row.items() if not math.isnan(value)}, step=epoch + 1)
            scored = f" valid_loss {valid_loss:.4f}" if not math.isnan(valid_loss) else ""
            scored += f" {config.metric} {score:.4f}" if evaluate_now else ""
            speed = f" {row['images_per_s']:.0f} img/s" + (f", ETA {eta.text()}" if eta is not None else "")
            mark = " *" if improved else ""
            print(f"fold {fold} epoch {epoch + 1}: train_loss {train_loss:.4f}{scored}{mark}{speed}")
        if on_evaluation is not None and evaluate_now and runtime.is_main:
            on_evaluation(fold, epoch + 1, score)
        if stopping:
            if runtime.is_main:
                print(f"fold {fold}: early stop after {patience} epochs without improvement")
            break
    result = {"fold": fold, "score": state.best_score, "best_epoch": state.best_epoch + 1, "epochs": state.epoch}
    result["first_step_unix"] = first_update.get("unix")
    if swa_model is not None and int(swa_model.n_averaged) > 0:
        result["swa_score"] = _finish_swa(
            swa_model, train_loader, valid_loader, task, table, valid_index, runtime, normalise
        )
        if runtime.is_main:
            swa_checkpoint = {"model": swa_model.module.state_dict(), "meta": meta, "score": result["swa_score"]}
            save_torch(paths.checkpoint(fold, "swa"), swa_checkpoint)
            print(f"fold {fold} SWA of {int(swa_model.n_averaged)} epochs: {config.metric} {result['swa_score']:.4f}")
    if runtime.is_main:
        write_json(paths.fold_metrics(fold), result)
        tracker.summary({f"best_{config.metric}": state.best_score, "best_epoch": state.best_epoch + 1})
        tracker.finish()
    barrier(runtime)
    return result


def _finish_swa(
    swa_model: AveragedModel,
    train_loader: DataLoader,
    valid_loader: DataLoader,
    task: Task,
    table: LabelledTable,
    valid_index: np.ndarray,
    runtime: Runtime,
    normalise: InputNormaliser,
) -> float:
    """Recompute batch-norm statistics for the averaged weights, then score them on the fold's validation."""
    update_bn((normalise(images) for images, _ in train_loader), swa_model, device=runtime.device)
    _, probabilities, indices = evaluate(swa_model.module, valid_loader, task, runtime=runtime, normalise=normalise)
    return float(task.score(table.targets[valid_index][indices], probabilities))


def summarise(config: Config, task: Task, table: LabelledTable, results: list[dict[str, Any]], paths: RunPaths) -> dict:
    """CV mean ± std over folds and the score of the concatenated OOF predictions."""
    scores = np.array([result["score"] for result in results], dtype=np.float64)
    parts = [task.read_predictions(paths.fold_oof(r["fold"])) for r in results]
    ids = np.concatenate([part[0] for part in parts])
    outputs = np.concatenate([part[1] for part in parts])
    fold_column = np.concatenate([np.full(len(part[0]), r["fold"]) for part, r in zip(parts, results, strict=True)])
    task.write_predictions(paths.oof, ids, outputs, fold_column)
    position = {image_id: i for i, image_id in enumerate(table.ids)}
    rows = np.array([position[image_id] for image_id in ids], dtype=np.int64)
    oof_score = task.score(table.targets[rows], outputs)
    tune = getattr(task, "tune_postprocessing", None)  # segmentation: thresholds and minimum areas on OOF
    extra = tune(outputs, paths.root) if tune is not None and config.segmentation.tune else {}
    return {
        **extra,
        "metric": config.metric,
        "higher_is_better": task.metric.higher_is_better,
        "cv_mean": float(scores.mean()),
        "cv_std": float(scores.std()),
        "oof_score": float(oof_score),
        "folds": {str(r["fold"]): r["score"] for r in results},
        "best_epochs": {str(r["fold"]): r["best_epoch"] for r in results},
        "experiment": config.experiment,
        "backbone": config.model.backbone,
    }


def train(config: Config, *, resume: bool = False, on_evaluation: EvaluationHook | None = None) -> dict[str, Any]:
    """Train every fold of the fold file; return (and save as metrics.json) CV mean ± std and OOF score."""
    paths = RunPaths.from_config(config)
    with run_lock(paths, "train"):
        return _train_locked(config, paths, resume, on_evaluation)


def _prepare_run_folder(config: Config, paths: RunPaths, resume: bool) -> None:
    """--resume continues only with the run's own settings; a new training moves an earlier one aside."""
    if resume and paths.config.is_file():
        check_same_run_settings(load_config(base=paths.config), config, paths.config, "--resume")
    if not resume:
        moved = move_previous_training(paths)
        if moved is not None:
            print(f"{paths.root}: an earlier training was there; moved it to {moved}")
    save_resolved_config(config, paths, "train")


@dataclass
class FoldInputs:
    """What every fold trains from: the labels (with pseudo-labels), the fold of each row and the task."""

    table: LabelledTable
    folds: np.ndarray
    task: Task
    training_targets: np.ndarray | None


def read_fold_inputs(config: Config, paths: RunPaths) -> FoldInputs:
    table = read_train_table(config.data)
    folds = read_folds(paths.folds, table)
    task = create_task(config, table.classes)
    training_targets = None
    if config.data.pseudo_labels is not None:
        table, folds, training_targets = with_pseudo_labels(
            table, folds, config.data.pseudo_labels, soft=config.pseudo.soft
        )
    return FoldInputs(table, folds, task, training_targets)


def train_folds(
    config: Config,
    inputs: FoldInputs,
    fold_list: list[int],
    *,
    runtime: Runtime,
    paths: RunPaths,
    resume: bool = False,
    on_evaluation: EvaluationHook | None = None,
) -> list[dict[str, Any]]:
    """Train `fold_list` one after another in this process; with --resume, finished folds are read back."""
    results = []
    eta = Eta(total_epochs=len(fold_list) * config.train.epochs)
    for fold in fold_list:
        if resume and paths.fold_metrics(fold).is_file():
            results.append(read_json(paths.fold_metrics(fold)))
            if runtime.is_main:
                print(f"fold {fold}: already trained, skipped (--resume)")
            continue
        results.append(
            train_fold(
                config,
                inputs.task,
                inputs.table,
                inputs.folds,
                fold,
                runtime=runtime,
                paths=paths,
                resume=resume,
                training_targets=inputs.training_targets,
                on_evaluation=on_evaluation,
                eta=eta,
            )
        )
    return results


def _train_locked(
    config: Config, paths: RunPaths, resume: bool, on_evaluation: EvaluationHook | None
) -> dict[str, Any]:
    runtime = init_runtime(config.train.device)
    try:
        # Everything that can be refused is read before the run folder changes.
        inputs = read_fold_inputs(config, paths)
        to_train = folds_to_train(inputs.folds, config.folds.train_folds)
        processes = min(config.train.parallel_folds, len(to_train))
        if runtime.is_main:
            _prepare_run_folder(config, paths, resume)
            write_json(paths.classes, inputs.table.classes)
        barrier(runtime)
        if processes > 1 and not runtime.distributed and on_evaluation is None:
            from .core.parallel import train_folds_in_parallel

            results = train_folds_in_parallel(config, to_train, processes, resume=resume)
        else:
            start_image_cache(config, inputs.task, inputs.table.frame["path"].astype(str).tolist())
            results = train_folds(
                config, inputs, to_train, runtime=runtime, paths=paths, resume=resume, on_evaluation=on_evaluation
            )
        metrics: dict[str, Any] = {}
        if runtime.is_main:
            metrics = summarise(config, inputs.task, inputs.table, results, paths)
            write_json(paths.metrics, metrics)
            tracker = create_tracker(config, paths.root, "cv", "summary")
            tracker.summary({key: value for key, value in metrics.items() if isinstance(value, float)})
            tracker.finish()
        barrier(runtime)
        return metrics
    finally:
        shutdown(runtime)
