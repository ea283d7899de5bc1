"""The epoch loop shared by deepshelf's torch models and the content towers: AdamW with linear warm-up (and
optionally cosine decay), gradient clipping, early stopping on a validation metric with the best weights kept,
autocast on GPU, and DistributedDataParallel when launched by torchrun. The caller supplies batches and a loss (and,
where its recipe differs, its own optimiser and a scheduler stepped after every update); the loop owns the rest.

`train_loop` reads as the steps of an epoch: `_train_epoch` (one `_Updates.step` per batch), then, on validation
epochs, `_EarlyStopping.record`, then `_out_of_time`.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from deepshelf.training import distributed

log = logging.getLogger(__name__)


@dataclass
class LoopSettings:
    epochs: int
    lr: float
    weight_decay: float = 0.0
    warmup_steps: int = 0
    # "cosine": the learning rate falls from lr towards 0 over `epochs` (half a cosine, one value per epoch; the
    # last epoch's is lr * (1 - cos(pi / epochs)) / 2), so the last epochs settle instead of wandering at full step
    # size; "constant": lr throughout
    schedule: Literal["constant", "cosine"] = "constant"
    clip: float = 1.0  # max gradient norm; 0 turns clipping off
    patience: int = 10  # validations without improvement before stopping
    eval_every: int = 1  # epochs between validations
    precision: str = "auto"  # auto (bf16/fp16 on GPU, fp32 on CPU) | fp32 | bf16 | fp16
    time_limit: float = 0.0  # minutes of training after which to stop (best weights kept); 0 = no limit
    progress: bool = True
    checkpoint: str | None = None  # file to write the best weights to (rank 0) each time they improve
    stop_at: float = 0.0  # stop once the validation metric reaches this (time-to-quality runs); 0 = never
    # False: this process trains alone even under torchrun (no process group, no DDP): the content towers, of which
    # each rank fits its own small copy
    data_parallel: bool = True
    log_level: int = logging.INFO  # of the one log line per epoch (content towers: DEBUG; they are short and many)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present; under torchrun each process takes its local GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return device


def _autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]


TICK_S = 10.0  # the longest a log stays silent during training


BAR_METRICS = {"loss": "loss", "valid_ndcg@10": "ndcg"}  # what the bar shows of an epoch's entry (short names)
BAR_REDRAW_S = 0.25  # the bar moves within an epoch at most this often (a step can take microseconds)


class _Progress:
    """A rich progress bar on an interactive terminal (the shared `terminal()` console, so other lines print above
    it), one line per epoch on stderr otherwise (rank 0 only). The bar counts epochs and moves within one as its
    steps go (their count known from the previous epoch, or from the batches' length)."""

    def __init__(self, enabled: bool, total_epochs: int):
        from deepshelf.encoders.progress import terminal

        self.bar, self.enabled, self.total = None, enabled, total_epochs
        self.last_line = self.last_draw = time.perf_counter()
        self.metrics = ""
        if enabled and terminal().is_terminal:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            from deepshelf.encoders.progress import bar_width

            console = terminal()
            # "epoch 3/20 ━━━━━━━━━━ 0:01:33 loss 0.4123 ndcg 0.0521": the bar gives way first on a narrow terminal
            self.bar = Progress(TextColumn("epoch {task.fields[epoch]}/{task.total:.0f}"),
                                BarColumn(bar_width=bar_width(console, 56)), TimeElapsedColumn(),
                                TextColumn("{task.description}"), console=console, transient=True)
            self.task = self.bar.add_task("", total=total_epochs, epoch=1)
            self.bar.start()

    def update(self, entry: dict) -> None:
        if self.bar is not None:
            self.metrics = "  ".join(f"{short} {entry[k]:.4f}" for k, short in BAR_METRICS.items() if k in entry)
            self.bar.update(self.task, completed=entry["epoch"], epoch=min(entry["epoch"] + 1, self.total),
                            description=self.metrics)
        elif self.enabled:  # a log file: one plain line per epoch, so a long run can be followed with tail -f
            text = "  ".join(f"{k} {v:.0f} s" if k in ("seconds", "elapsed") else f"{k} {v}"
                             for k, v in entry.items() if k != "epoch")
            left = (self.total - entry["epoch"]) * entry["elapsed"] / entry["epoch"]
            self._line(f"epoch {entry['epoch']}/{self.total}  {text}  (about {left:.0f} s left at most)")
        self.last_line = time.perf_counter()

    def tick(self, epoch: int, steps: int, seconds: float, expected_steps: int | None) -> None:
        """Within a long epoch, a line at least every `TICK_S` seconds (with the epoch's time left once the
        previous epoch says how many steps there are), so a log never stays silent for minutes."""
        if self.bar is not None:
            now = time.perf_counter()
            if now - self.last_draw >= BAR_REDRAW_S:
                done = min(steps / expected_steps, 1.0) if expected_steps else None
                step = f"step {steps}{'/' + str(expected_steps) if expected_steps else ''}"
                self.bar.update(self.task, completed=epoch - 1 + (done or 0.0), epoch=epoch,
                                description="  ".join(t for t in (step, self.metrics) if t))
                self.last_draw = now
            return
        if not self.enabled or time.perf_counter() - self.last_line < TICK_S:
            return
        left = f", about {seconds / steps * (expected_steps - steps):.0f} s left in it" if expected_steps else ""
        self._line(f"epoch {epoch}/{self.total}  step {steps}{'/' + str(expected_steps) if expected_steps else ''}"
                   f"  {seconds:.0f} s{left}")
        self.last_line = time.perf_counter()

    def _line(self, text: str) -> None:
        sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {text}\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def adamw(module: nn.Module, settings: LoopSettings, device: torch.device) -> torch.optim.AdamW:
    """The loop's default optimiser. No decay on embeddings, norms and biases: decaying rare items' vectors towards
    0 only hurts them."""
    decay = [p for n, p in module.named_parameters() if p.ndim >= 2 and "embeddings" not in n]
    no_decay = [p for n, p in module.named_parameters() if not (p.ndim >= 2 and "embeddings" not in n)]
    # fused: one kernel per parameter group instead of a pass per update term; the step-cost table of
    # benchmarks/recbole_compare.py times the step both ways (on Beauty with a 2-core CPU: no difference)
    return torch.optim.AdamW([{"params": decay, "weight_decay": settings.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=settings.lr,
                             fused=device.type in ("cpu", "cuda"))


def learning_rate(settings: LoopSettings, update: int, epoch: int) -> float:
    """The lr of update number `update` (from 0) in `epoch` (from 1): linear warm-up over the first
    `warmup_steps` updates, times the epoch's share of lr under the cosine schedule."""
    share = 1.0
    if settings.schedule == "cosine":
        share = 0.5 * (1 + math.cos(math.pi * (epoch - 1) / settings.epochs))
    return settings.lr * min(1.0, (update + 1) / max(1, settings.warmup_steps)) * share


class _Updates:
    """The optimiser's side of each batch: backward (scaled under fp16), clipping, the learning rate, the step.

    The learning rate is `learning_rate(...)`, set before every update, unless the caller brings a scheduler: it
    then owns the learning rate and is stepped after every update (as torch's schedulers expect).
    """

    def __init__(self, module: nn.Module, settings: LoopSettings, device: torch.device,
                 optimizer: torch.optim.Optimizer | None, scheduler: torch.optim.lr_scheduler.LRScheduler | None):
        self.module, self.settings, self.device, self.scheduler = module, settings, device, scheduler
        self.optimizer = optimizer if optimizer is not None else adamw(module, settings, device)
        self.amp_dtype = _autocast_dtype(settings.precision, device)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)
        self.count, self.epoch = 0, 1  # updates so far; the epoch the next one belongs to
        self.last_lr = self.optimizer.param_groups[0]["lr"]  # the lr of the latest update, for the log

    def autocast(self):
        """The forward pass's precision: bf16/fp16 autocast as `settings.precision` asks, else a no-op."""
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                              enabled=self.amp_dtype is not None)

    def step(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.settings.clip > 0:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the fp16-scaled ones
            nn.utils.clip_grad_norm_(self.module.parameters(), self.settings.clip)
        if self.scheduler is None:
            for group in self.optimizer.param_groups:
                group["lr"] = learning_rate(self.settings, self.count, self.epoch)
        self.last_lr = self.optimizer.param_groups[0]["lr"]
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.scheduler is not None:
            self.scheduler.step()
        self.count += 1


class _EarlyStopping:
    """Keeps the best validated weights (in memory; on rank 0 also in `settings.checkpoint`, so they survive a crash
    or a kill of a long run) and says when to stop: after `patience` validations without improvement, or once the
    metric reaches `stop_at`."""

    def __init__(self, module: nn.Module, settings: LoopSettings, rank: int):
        self.module, self.settings, self.rank = module, settings, rank
        self.best, self.state, self.stale = -np.inf, None, 0

    def record(self, metric: float, entry: dict) -> bool:
        """Notes the validation in the epoch's log `entry`; True when training should stop."""
        epoch, stop = entry["epoch"], False
        entry["valid_ndcg@10"] = round(metric, 5)
        if metric > self.best:
            self.best, self.stale = metric, 0
            self.state = copy.deepcopy(self.module.state_dict())
            if self.settings.checkpoint and self.rank == 0:
                tmp = f"{self.settings.checkpoint}.tmp"  # written whole, then renamed: never a half-written file
                torch.save({k: v.cpu() for k, v in self.state.items()}, tmp)
                os.replace(tmp, self.settings.checkpoint)
            entry["best"] = True
        else:
            self.stale += 1
            stop = self.stale >= self.settings.patience
            if stop:
                log.info("early stop at epoch %d: no improvement for %d validations", epoch, self.settings.patience)
        if self.settings.stop_at and entry["valid_ndcg@10"] >= self.settings.stop_at:  # as logged
            stop = True
            log.info("stopping at epoch %d: validation metric reached %s", epoch, self.settings.stop_at)
        return stop

    def restore(self) -> None:
        """Loads the best validated weights back (nothing when nothing was validated)."""
        if self.state is not None:
            self.module.load_state_dict(self.state)


def train_loop(module: nn.Module, loss_of: Callable[[nn.Module, Any], torch.Tensor],
               batches: Callable[[int], Iterable[Any]], settings: LoopSettings, device: torch.device,
               validate: Callable[[], float] | None = None, *, optimizer: torch.optim.Optimizer | None = None,
               scheduler: torch.optim.lr_scheduler.LRScheduler | None = None) -> list[dict]:
    """Train `module` in place; returns one dict per epoch (epoch, loss, seconds of training, lr of its last
    update, valid_ndcg@10 when validated, elapsed seconds since the start including validations).

    loss_of(net, batch) -> scalar loss, where `net` is the module or its DDP wrapper (call it for the forward
    pass so gradients are synchronised). batches(epoch) yields this process's batches. validate() returns the
    metric to maximise; it runs on rank 0 only and the result is broadcast so all ranks stop together. At the
    end the best validated weights are loaded back into `module`.

    optimizer: instead of `adamw(...)`, over `module`'s parameters; scheduler: a torch lr scheduler of it,
    stepped after every update, which then owns the learning rate (settings' warm-up and schedule unused).
    """
    if settings.schedule not in ("constant", "cosine"):
        raise ValueError(f"unknown learning-rate schedule {settings.schedule!r}; expected constant or cosine")
    if scheduler is not None and (settings.warmup_steps or settings.schedule != "constant"):
        raise ValueError("a scheduler owns the learning rate: leave warmup_steps 0 and the schedule constant")
    rank, size = distributed.world() if settings.data_parallel else (0, 1)
    net = _data_parallel(module, device) if size > 1 else module
    updates = _Updates(module, settings, device, optimizer, scheduler)
    stopping = _EarlyStopping(module, settings, rank)
    history: list[dict] = []
    progress = _Progress(settings.progress and rank == 0, settings.epochs)
    began, expected_steps = time.perf_counter(), None
    try:
        for epoch in range(1, settings.epochs + 1):
            entry, expected_steps = _train_epoch(net, loss_of, batches, epoch, updates, progress, expected_steps)
            stop = False
            if validate is not None and (epoch % settings.eval_every == 0 or epoch == settings.epochs):
                stop = stopping.record(_on_rank0(validate, rank, size, device), entry)
            entry["elapsed"] = round(time.perf_counter() - began, 3)  # wall time so far, validations included
            stop = _out_of_time(settings, entry, rank, size, device) or stop  # every rank asks, whatever `stop`
            history.append(entry)
            progress.update({k: v for k, v in entry.items() if k != "best"})
            log.log(settings.log_level, "epoch %s", entry)
            if stop:
                break
    finally:
        progress.close()
    stopping.restore()
    return history


def _data_parallel(module: nn.Module, device: torch.device) -> nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)


def _train_epoch(net: nn.Module, loss_of: Callable[[nn.Module, Any], torch.Tensor],
                 batches: Callable[[int], Iterable[Any]], epoch: int, updates: _Updates, progress: _Progress,
                 expected_steps: int | None) -> tuple[dict, int]:
    """One pass over the epoch's batches, an update each: its log entry (epoch, mean loss, seconds, lr of its last
    update) and its number of steps (the next epoch's expected length, for its time estimate)."""
    net.train()
    updates.epoch = epoch
    start = time.perf_counter()
    total, steps = torch.zeros((), device=updates.device), 0
    epoch_batches = batches(epoch)
    if expected_steps is None:  # the first epoch's length, when the batches say it before it runs
        sized = epoch_batches if hasattr(epoch_batches, "__len__") else batches  # a list, or a batcher with len()
        expected_steps = len(sized) if hasattr(sized, "__len__") else None
    for batch in epoch_batches:
        with updates.autocast():
            loss = loss_of(net, batch)
        updates.step(loss)
        total += loss.detach()  # summed on-device: no host sync per step
        steps += 1
        progress.tick(epoch, steps, time.perf_counter() - start, expected_steps)
    mean_loss = float(total) / max(steps, 1)
    if not np.isfinite(mean_loss):
        raise FloatingPointError(f"training diverged at epoch {epoch} (loss {mean_loss}); lower lr")
    entry = {"epoch": epoch, "loss": round(mean_loss, 5), "seconds": round(time.perf_counter() - start, 3),
             "lr": float(f"{updates.last_lr:.4g}")}  # its last update's (warm-up included)
    return entry, steps


def _out_of_time(settings: LoopSettings, entry: dict, rank: int, size: int, device: torch.device) -> bool:
    """Whether `time_limit` has passed by the end of the epoch of `entry` (best weights are kept all the same)."""
    over = bool(settings.time_limit) and entry["elapsed"] > settings.time_limit * 60
    if settings.time_limit and size > 1:  # rank 0's clock decides for all, so no rank waits alone
        over = bool(_on_rank0(lambda: float(over), rank, size, device))
    if over:
        log.info("stopping at epoch %d: time limit of %.1f min reached", entry["epoch"], settings.time_limit)
    return over


def _on_rank0(fn: Callable[[], float], rank: int, size: int, device: torch.device) -> float:
    """fn() on rank 0, its result shared with every rank (so early stopping is decided once, for all)."""
    value = fn() if rank == 0 else 0.0
    if size > 1:
        import torch.distributed as dist

        box = torch.tensor([value], dtype=torch.float64, device=device)
        dist.broadcast(box, src=0)
        value = float(box.item())
    return value
