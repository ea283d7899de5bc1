"""Catalogue-tuned projection heads: small MLPs on frozen encoder vectors, trained on the shop's own attributes.

Raw ImageNet features put a product near others of the same *shape*; shoppers also care about article type and
colour. For each attribute (article type, colour, gender, ...) a head maps the frozen vector to a unit vector
trained with a normalised-softmax (cosine) classifier (Wang et al. 2017, NormFace), which pulls products of a
class together on the sphere. The item embedding is the weighted concatenation of the heads' outputs, so the dot
product of two embeddings is a weighted sum of per-attribute cosines and works with any inner-product index.

Inference is plain numpy (`Projection`), so a server loads weights from an `.npz` and never needs torch.
Heads only ever see the rows in `train_mask`: held-out products are embedded, never learned from.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)


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

    def __call__(self, x: np.ndarray, batch: int = 8192) -> np.ndarray:
        out = np.empty((len(x), self.w2.shape[1]), np.float32)
        for s in range(0, len(x), batch):  # chunks bound the hidden activations' memory
            h = (np.asarray(x[s:s + batch], np.float32) - self.mean) / self.scale
            h = np.maximum(h @ self.w1 + self.b1, 0.0)
            out[s:s + batch] = h @ self.w2 + self.b2
        return unit_rows(out)

    def state(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}.{k}": getattr(self, k) for k in ("mean", "scale", "w1", "b1", "w2", "b2")}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray], prefix: str) -> "Projection":
        return cls(**{k: state[f"{prefix}.{k}"].astype(np.float32) for k in ("mean", "scale", "w1", "b1", "w2", "b2")})


class HeadConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hidden: int = Field(default=512, ge=8)
    dim: int = Field(default=64, ge=4)
    epochs: int = Field(default=40, ge=1)
    batch_size: int = Field(default=256, ge=8)
    lr: float = Field(default=2e-3, gt=0)
    weight_decay: float = Field(default=1e-4, ge=0)
    dropout: float = Field(default=0.2, ge=0, lt=1)
    input_dropout: float = Field(default=0.1, ge=0, lt=1)
    scale: float = Field(default=16.0, gt=0)  # cosine-softmax temperature (NormFace's s)
    seed: int = 0


def standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(0).astype(np.float32)
    scale = np.maximum(x.std(0), 1e-3).astype(np.float32)
    return mean, scale


def _torch_tower(d_in: int, hidden: int, d_out: int, dropout: float, input_dropout: float):
    import torch.nn as nn

    return nn.Sequential(nn.Dropout(input_dropout), nn.Linear(d_in, hidden), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(hidden, d_out))


def _to_projection(tower, mean, scale) -> Projection:
    lin1, lin2 = tower[1], tower[4]
    return Projection(mean, scale, lin1.weight.detach().numpy().T.copy(), lin1.bias.detach().numpy().copy(),
                      lin2.weight.detach().numpy().T.copy(), lin2.bias.detach().numpy().copy())


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
    """One cosine-classifier head per attribute, trained jointly on rows of `train_mask`.

    x: float32 [n, d] frozen vectors; labels: name -> int64 [n] class codes (-1 = unknown, ignored).
    """
    import torch
    import torch.nn.functional as F

    cfg = config or HeadConfig()
    torch.manual_seed(cfg.seed)
    rows = np.flatnonzero(train_mask)
    mean, scale = standardiser(x[rows])
    xt = torch.from_numpy(((x[rows] - mean) / scale).astype(np.float32))
    names = [a for a, c in labels.items() if (c[rows] >= 0).any()]
    ys = {a: torch.from_numpy(labels[a][rows]) for a in names}
    towers = torch.nn.ModuleDict({a: _torch_tower(x.shape[1], cfg.hidden, cfg.dim, cfg.dropout, cfg.input_dropout)
                                  for a in names})
    prototypes = torch.nn.ParameterDict({a: torch.nn.Parameter(torch.randn(int(ys[a].max()) + 1, cfg.dim) * 0.1)
                                         for a in names})
    params = list(towers.parameters()) + list(prototypes.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
    steps = cfg.epochs * max(1, -(-len(rows) // cfg.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps)
    gen = torch.Generator().manual_seed(cfg.seed)
    for epoch in range(cfg.epochs):
        towers.train()
        total = 0.0
        for batch in torch.randperm(len(rows), generator=gen).split(cfg.batch_size):
            loss = 0.0
            for a in names:
                y = ys[a][batch]
                known = y >= 0
                if not known.any():
                    continue
                z = F.normalize(towers[a](xt[batch][known]), dim=1)  # (b, dim)
                logits = cfg.scale * z @ F.normalize(prototypes[a], dim=1).T  # (b, classes)
                loss = loss + F.cross_entropy(logits, y[known])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
        log.debug("heads epoch %d loss %.4f", epoch, total)
    towers.eval()
    return {a: _to_projection(towers[a], mean, scale) for a in names}


def combine(parts: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """Weighted concatenation of unit-row blocks, renormalised: dot = weighted mean of per-block cosines."""
    total = sum(w for _, w in parts if w > 0)
    blocks = [v * np.sqrt(w / total) for v, w in parts if w > 0]
    return unit_rows(np.concatenate(blocks, axis=1))
