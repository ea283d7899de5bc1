"""The epoch loop shared by deepshelf's torch models: AdamW with linear warm-up (and optionally cosine decay),
gradient clipping, early stopping on a validation metric with the best weights kept, autocast on GPU, and
DistributedDataParallel when launched by torchrun. The model supplies batches and a loss; the loop owns everything
else.
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


class _Progress:
    """A rich progress bar on an interactive terminal, one line per epoch on stderr otherwise (rank 0 only)."""

    def __init__(self, enabled: bool, total_epochs: int):
        self.bar, self.enabled, self.total = None, enabled, total_epochs
        self.last_line = time.perf_counter()
        if enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("epoch"), MofNCompleteColumn(), BarColumn(), TimeElapsedColumn(),
                                TextColumn("{task.description}"), console=Console(stderr=True), transient=True)
            self.task = self.bar.add_task("", total=total_epochs)
            self.bar.start()

    def update(self, entry: dict) -> None:
        if self.bar is not None:
            text = "  ".join(f"{k} {v:.4f}" for k, v in entry.items() if k not in ("epoch", "seconds"))
            self.bar.update(self.task, completed=entry["epoch"], description=text)
        elif self.enabled:  # a log file: one plain line per epoch, so a long run can be followed with tail -f
            text = "  ".join(f"{k} {v}" for k, v in entry.items() if k != "epoch")
            left = (self.total - entry["epoch"]) * entry["elapsed"] / entry["epoch"]
            self._line(f"epoch {entry['epoch']}/{self.total}  {text}  (about {left:.0f} s left at most)")
        self.last_line = time.perf_counter()

    def tick(self, epoch: int, steps: int, seconds: float, expected_steps: int | None) -> None:
        """Within a long epoch, a line at least every `TICK_S` seconds (with the epoch's time left once the
        previous epoch says how many steps there are), so a log never stays silent for minutes."""
        if self.bar is not None or not self.enabled or time.perf_counter() - self.last_line < TICK_S:
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


def train_loop(module: nn.Module, loss_of: Callable[[nn.Module, Any], torch.Tensor],
               batches: Callable[[int], Iterable[Any]], settings: LoopSettings, device: torch.device,
               validate: Callable[[], float] | None = None) -> list[dict]:
    """Train `module` in place; returns one dict per epoch (epoch, loss, seconds of training, lr of its last
    update, valid_ndcg@10 when validated, elapsed seconds since the start including validations).

    loss_of(net, batch) -> scalar loss, where `net` is the module or its DDP wrapper (call it for the forward
    pass so gradients are synchronised). batches(epoch) yields this process's batches. validate() returns the
    metric to maximise; it runs on rank 0 only and the result is broadcast so all ranks stop together. At the
    end the best validated weights are loaded back into `module`.
    """
    if settings.schedule not in ("constant", "cosine"):
        raise ValueError(f"unknown learning-rate schedule {settings.schedule!r}; expected constant or cosine")
    rank, size = distributed.world()
    net: nn.Module = module
    if size > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)
    # No decay on embeddings, norms and biases: decaying rare items' vectors towards 0 only hurts them.
    decay = [p for n, p in module.named_parameters() if p.ndim >= 2 and "embeddings" not in n]
    no_decay = [p for n, p in module.named_parameters() if not (p.ndim >= 2 and "embeddings" not in n)]
    # fused: one kernel per parameter group instead of a pass per update term; the step-cost table of
    # benchmarks/recbole_compare.py times the step both ways (on Beauty with a 2-core CPU: no difference)
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": settings.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=settings.lr,
                                  fused=device.type in ("cpu", "cuda"))
    warmup = max(1, settings.warmup_steps)
    lr_share, updates = 1.0, 0  # lr_share: this epoch's share of lr (cosine schedule)
    amp_dtype = _autocast_dtype(settings.precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)

    history: list[dict] = []
    best, best_state, stale = -np.inf, None, 0
    progress = _Progress(settings.progress and rank == 0, settings.epochs)
    began, expected_steps = time.perf_counter(), None
    try:
        for epoch in range(1, settings.epochs + 1):
            net.train()
            if settings.schedule == "cosine":
                lr_share = 0.5 * (1 + math.cos(math.pi * (epoch - 1) / settings.epochs))
            start = time.perf_counter()
            total, steps = torch.zeros((), device=device), 0
            for batch in batches(epoch):
                with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                    loss = loss_of(net, batch)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if settings.clip > 0:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(module.parameters(), settings.clip)
                for group in optimizer.param_groups:  # linear warm-up over the first updates, times the decay
                    group["lr"] = settings.lr * min(1.0, (updates + 1) / warmup) * lr_share
                scaler.step(optimizer)
                scaler.update()
                updates += 1
                total += loss.detach()  # summed on-device: no host sync per step
                steps += 1
                progress.tick(epoch, steps, time.perf_counter() - start, expected_steps)
            mean_loss = float(total) / max(steps, 1)
            expected_steps = steps  # the next epoch's length, for its time estimate
            if not np.isfinite(mean_loss):
                raise FloatingPointError(f"training diverged at epoch {epoch} (loss {mean_loss}); lower lr")
            entry = {"epoch": epoch, "loss": round(mean_loss, 5), "seconds": round(time.perf_counter() - start, 3),
                     "lr": float(f"{optimizer.param_groups[0]['lr']:.4g}")}  # its last update's (warm-up included)
            stop = False
            if validate is not None and (epoch % settings.eval_every == 0 or epoch == settings.epochs):
                metric = _on_rank0(validate, rank, size, device)
                entry["valid_ndcg@10"] = round(metric, 5)
                if metric > best:
                    best, stale = metric, 0
                    best_state = copy.deepcopy(module.state_dict())
                    if settings.checkpoint and rank == 0:  # survives a crash or a kill of a long run
                        tmp = f"{settings.checkpoint}.tmp"
                        torch.save({k: v.cpu() for k, v in best_state.items()}, tmp)
                        os.replace(tmp, settings.checkpoint)
                    entry["best"] = True
                else:
                    stale += 1
                    stop = stale >= settings.patience
                    if stop:
                        log.info("early stop at epoch %d: no improvement for %d validations", epoch,
                                 settings.patience)
                if settings.stop_at and entry["valid_ndcg@10"] >= settings.stop_at:  # as logged
                    stop = True
                    log.info("stopping at epoch %d: validation metric reached %s", epoch, settings.stop_at)
            entry["elapsed"] = round(time.perf_counter() - began, 3)  # wall time so far, validations included
            over = bool(settings.time_limit) and entry["elapsed"] > settings.time_limit * 60
            if settings.time_limit and size > 1:  # rank 0's clock decides for all, so no rank waits alone
                over = bool(_on_rank0(lambda: float(over), rank, size, device))
            if over:
                stop = True
                log.info("stopping at epoch %d: time limit of %.1f min reached", epoch, settings.time_limit)
            history.append(entry)
            progress.update({k: v for k, v in entry.items() if k != "best"})
            log.info("epoch %s", entry)
            if stop:
                break
    finally:
        progress.close()
    if best_state is not None:
        module.load_state_dict(best_state)
    return history


def _on_rank0(fn: Callable[[], float], rank: int, size: int, device: torch.device) -> float:
    """fn() on rank 0, its result shared with every rank (so early stopping is decided once, for all)."""
    value = fn() if rank == 0 else 0.0
    if size > 1:
        import torch.distributed as dist

        box = torch.tensor([value], dtype=torch.float64, device=device)
        dist.broadcast(box, src=0)
        value = float(box.item())
    return value
