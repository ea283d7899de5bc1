"""Catalogue-tuned projection heads: small MLPs on frozen encoder vectors, trained on the shop's own attributes.

Raw ImageNet features put a product near others of the same *shape*; shoppers also care about article type and
colour. For each attribute (article type, colour, ...) a head maps the frozen vector to a unit vector trained with
a normalised-softmax (cosine) classifier (Wang et al. 2017, NormFace). The heads share one hidden layer (cheap to
train for many attributes). `Projection.probabilities` turns a head into class probabilities; the dot product of
two products' probability vectors is the chance they share the attribute, which is what attribute P@k rewards,
so the visual embedding (`models/content.py`) is the weighted concatenation of those probability vectors.

Inference is plain numpy (`Projection`), so a server loads weights from an `.npz` and never needs torch.
Heads only ever see the rows in `train_mask`: held-out products are embedded, never learned from.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


def unit_rows(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


@dataclass
class Projection:
    """Standardise, Linear -> ReLU -> Linear, L2-normalise: float32 [n, d_in] -> unit [n, d_out]."""

    mean: np.ndarray  # [d_in]
    scale: np.ndarray  # [d_in]
    w1: np.ndarray  # [d_in, hidden]
    b1: np.ndarray  # [hidden]
    w2: np.ndarray  # [hidden, d_out]
    b2: np.ndarray  # [d_out]
    classes: np.ndarray | None = None  # [C, d_out] unit class prototypes of a cosine-classifier head
    class_scale: float = 16.0  # that classifier's softmax scale

    def __call__(self, x: np.ndarray, batch: int = 8192) -> np.ndarray:
        out = np.empty((len(x), self.w2.shape[1]), np.float32)
        for s in range(0, len(x), batch):  # chunks bound the hidden activations' memory
            h = (np.asarray(x[s:s + batch], np.float32) - self.mean) / self.scale
            h = np.maximum(h @ self.w1 + self.b1, 0.0)
            out[s:s + batch] = h @ self.w2 + self.b2
        return unit_rows(out)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities [n, C] of a classifier head: softmax(scale * cos(embedding, prototypes)).

        The dot product of two rows is the probability that the two products share the class (if the
        predictions are independent and calibrated), the quantity attribute P@k rewards.
        """
        logits = self.class_scale * (self(x) @ self.classes.T)
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        return (p / p.sum(1, keepdims=True)).astype(np.float32)

    def state(self, prefix: str) -> dict[str, np.ndarray]:
        """Plain arrays under `prefix.*` (with a classifier head's prototypes and scale), for an `.npz`."""
        out = {f"{prefix}.{k}": getattr(self, k) for k in ("mean", "scale", "w1", "b1", "w2", "b2")}
        if self.classes is not None:
            out |= {f"{prefix}.classes": self.classes, f"{prefix}.class_scale": np.float32(self.class_scale)}
        return out

    @classmethod
    def from_tower(cls, tower, mean: np.ndarray, scale: np.ndarray) -> "Projection":
        """The numpy form of a trained `torch_tower`."""
        lin1, lin2 = tower[1], tower[4]
        return cls(mean, scale, lin1.weight.detach().numpy().T.copy(), lin1.bias.detach().numpy().copy(),
                   lin2.weight.detach().numpy().T.copy(), lin2.bias.detach().numpy().copy())

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray], prefix: str) -> "Projection":
        head = cls(**{k: state[f"{prefix}.{k}"].astype(np.float32) for k in ("mean", "scale", "w1", "b1", "w2", "b2")})
        if f"{prefix}.classes" in state:
            head.classes = state[f"{prefix}.classes"].astype(np.float32)
            head.class_scale = float(state[f"{prefix}.class_scale"])
        return head


class ProjectionTrainingConfig(BaseModel):
    """What every small projection tower trained here shares: its size and its optimiser settings."""

    model_config = ConfigDict(extra="forbid")

    hidden: int = Field(default=512, ge=8)
    dim: int = Field(default=64, ge=4)
    epochs: int = Field(default=40, ge=1)
    batch_size: int = Field(default=256, ge=8)
    lr: float = Field(default=2e-3, gt=0)
    weight_decay: float = Field(default=1e-4, ge=0)
    dropout: float = Field(default=0.2, ge=0, lt=1)
    threads: int = Field(default=1, ge=0)  # torch threads while training; 1 wins on a busy small machine, 0 = keep
    seed: int = 0


class HeadConfig(ProjectionTrainingConfig):
    input_dropout: float = Field(default=0.1, ge=0, lt=1)
    scale: float = Field(default=16.0, gt=0)  # cosine-softmax temperature (NormFace's s)


def standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(0).astype(np.float32)
    scale = np.maximum(x.std(0), 1e-3).astype(np.float32)
    return mean, scale


def torch_tower(d_in: int, hidden: int, d_out: int, dropout: float, input_dropout: float):
    """The torch twin of a `Projection` (without its standardising and normalising): trained here and in
    `align.py`, then read into a `Projection` by `Projection.from_tower`."""
    import torch.nn as nn

    return nn.Sequential(nn.Dropout(input_dropout), nn.Linear(d_in, hidden), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(hidden, d_out))


def train_towers(towers, loss_of, n_rows: int, cfg: ProjectionTrainingConfig) -> None:
    """Train `towers` (one torch module holding every trained part) in place with the shared epoch loop.

    loss_of(towers, rows) -> scalar loss of a batch of row numbers (int64 [b], shuffled from 0..n_rows-1 by a
    generator seeded with cfg.seed). AdamW with weight decay on every parameter, under a one-cycle schedule over
    all epochs stepped after every batch; fp32, no clipping, a fixed number of epochs (nothing is validated). Each
    rank of a torchrun launch fits its own towers (they are small), so the loop stays out of data parallelism.
    """
    import torch

    from deepshelf.training.loop import LoopSettings, train_loop

    opt = torch.optim.AdamW(towers.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
    steps = cfg.epochs * max(1, -(-n_rows // cfg.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps)
    gen = torch.Generator().manual_seed(cfg.seed)
    settings = LoopSettings(epochs=cfg.epochs, lr=cfg.lr, weight_decay=cfg.weight_decay, clip=0.0, precision="fp32",
                            progress=False, data_parallel=False, log_level=logging.DEBUG)
    train_loop(towers, loss_of, lambda epoch: torch.randperm(n_rows, generator=gen).split(cfg.batch_size),
               settings, torch.device("cpu"), optimizer=opt, scheduler=sched)
    towers.eval()


def encode_labels(values: np.ndarray, train_mask: np.ndarray, min_count: int = 2) -> tuple[np.ndarray, list[str]]:
    """Class codes (int64 [n], -1 = unknown or too rare in the training rows) and the class names."""
    values = np.asarray(values, dtype=object)
    present = np.array([v is not None and str(v) != "" for v in values])
    names, counts = np.unique(values[present & train_mask].astype(str), return_counts=True)
    names = names[counts >= min_count]
    lookup = {n: i for i, n in enumerate(names.tolist())}
    codes = np.array([lookup.get(str(v), -1) if p else -1 for v, p in zip(values, present)], dtype=np.int64)
    return codes, names.tolist()


def train_attribute_heads(x: np.ndarray, labels: dict[str, np.ndarray], train_mask: np.ndarray,
                          config: HeadConfig | None = None) -> dict[str, Projection]:
    """Cosine-classifier heads, one per attribute, on a shared hidden layer, trained on rows of `train_mask`.

    x: float32 [n, d] frozen vectors; labels: name -> int64 [n] class codes (-1 = unknown, ignored).
    The shared first layer keeps training cost flat in the number of attributes; each head's `Projection`
    carries its own copy of it, so heads stay independent at inference.
    """
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    cfg = config or HeadConfig()
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rows = np.flatnonzero(train_mask)
    mean, scale = standardiser(x[rows])
    xt = torch.from_numpy(((x[rows] - mean) / scale).astype(np.float32))
    names = [a for a, c in labels.items() if (c[rows] >= 0).any()]
    ys = torch.from_numpy(np.stack([labels[a][rows] for a in names], 1))  # (n_train, A)
    trunk = nn.Sequential(nn.Dropout(cfg.input_dropout), nn.Linear(x.shape[1], cfg.hidden), nn.ReLU(),
                          nn.Dropout(cfg.dropout))
    outs = nn.ModuleList(nn.Linear(cfg.hidden, cfg.dim) for _ in names)
    prototypes = nn.ParameterList(nn.Parameter(torch.randn(int(ys[:, j].max()) + 1, cfg.dim) * 0.1)
                                  for j in range(len(names)))
    towers = nn.ModuleDict({"trunk": trunk, "outs": outs, "prototypes": prototypes})

    def loss_of(net, batch):
        h = net["trunk"](xt[batch])  # (b, hidden)
        loss = 0.0
        for j in range(len(names)):
            y = ys[batch, j]
            known = y >= 0
            if known.any():
                z = F.normalize(net["outs"][j](h[known]), dim=1)  # (b', dim)
                logits = cfg.scale * z @ F.normalize(net["prototypes"][j], dim=1).T  # (b', classes)
                loss = loss + F.cross_entropy(logits, y[known])
        return loss

    train_towers(towers, loss_of, len(rows), cfg)
    lin1 = trunk[1]
    w1, b1 = lin1.weight.detach().numpy().T.copy(), lin1.bias.detach().numpy().copy()
    return {a: Projection(mean, scale, w1, b1, outs[j].weight.detach().numpy().T.copy(),
                          outs[j].bias.detach().numpy().copy(),
                          F.normalize(prototypes[j].detach(), dim=1).numpy().copy(), cfg.scale)
            for j, a in enumerate(names)}


def combine(parts: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """Weighted concatenation of unit-row blocks, renormalised: dot = weighted mean of per-block cosines."""
    total = sum(w for _, w in parts if w > 0)
    blocks = [v * np.sqrt(w / total) for v, w in parts if w > 0]
    return unit_rows(np.concatenate(blocks, axis=1))
