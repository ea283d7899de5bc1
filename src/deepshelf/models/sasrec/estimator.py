"""SASRec: self-attentive sequential recommendation (Kang & McAuley, ICDM 2018), trained with full-softmax
cross-entropy over every position of every sequence (Klenitskiy & Vasilev, RecSys 2023, "SASRec+").

`SASRecNetwork` is the math: item ids (B, T) -> output vectors (B, T, d), scored against the shared item
embeddings. `SASRec` is the estimator: it builds training batches, owns the loss, device and epochs (through
`deepshelf.training.loop`), and scores raw histories, so an anonymous session is served like a known shopper.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field, field_validator
from torch import nn

from deepshelf.data.interactions import Histories, Interactions
from deepshelf.data.schema import EVENT_TYPE_NAMES
from deepshelf.models.base import ModelConfig, Recommender, Validation
from deepshelf.models.layers import Norm, TransformerBlock, causal_padding_mask
from deepshelf.models.losses import full_softmax_loss, sampled_softmax_loss
from deepshelf.training import distributed
from deepshelf.training.loop import LoopSettings, resolve_device, seed_everything, train_loop

log = logging.getLogger(__name__)


class SASRecConfig(ModelConfig):
    epochs: int = Field(default=200, ge=1)
    max_len: int = Field(default=200, gt=0)  # most recent items a prediction looks at
    dim: int = Field(default=64, gt=0)
    layers: int = Field(default=2, ge=1)
    heads: int = Field(default=1, ge=1)
    ffn_mult: int = Field(default=1, ge=1)  # feed-forward width / dim: 1 as in SASRec, 4 as in GPT
    # where each block's LayerNorms sit (layers.TransformerBlock): after each residual sum ("post", as RecBole),
    # before each branch ("pre"), or on the attention's queries ("query", the original SASRec code's form);
    # with init_std 0.02, post-norm reached beauty's best validation NDCG@10 in a third of the epochs pre-norm
    # needed, at the same test quality
    norm: Norm = "post"
    # multiply input item vectors by sqrt(dim), as the original SASRec code does: with both tables drawn at one
    # std, the item's identity then outweighs its position 8:1 at dim 64 (the output side is unscaled)
    scale_items: bool = False
    # which events train: "last" = each shopper's newest max_len + 1 (SASRec's convention); "all" = older ones
    # too, cut into further windows of max_len + 1, so long histories (a third of ml-1m's events) are not wasted
    windows: Literal["last", "all"] = "all"
    # how sequences meet in a batch: "by_length" sorts them by length within random chunks of 32 batches (less
    # padding to compute on; as the loss is a mean over a batch's positions, each sequence then weighs about the
    # same), "shuffled" draws them at random (each position weighs about the same, as in SASRec and RecBole)
    batching: Literal["by_length", "shuffled"] = "by_length"
    # what a position embedding encodes: an item's index from the oldest item the model sees ("oldest", as
    # RecBole and SASRec+ do), so an output never depends on how many events come after it, or its distance
    # back from the newest ("newest", as the original SASRec's left-padded arrays); runs saved before this
    # was a choice counted from the newest
    positions: Literal["oldest", "newest"] = "oldest"
    dropout: float = Field(default=0.2, ge=0.0, lt=1.0)
    attn_dropout: float = Field(default=0.0, ge=0.0, lt=1.0)  # on attention weights, as the original SASRec
    # std of the item and position embeddings at init; None = dim**-0.5 (unit-variance logits). A small value
    # (0.02) starts from near-uniform logits, where Adam's steps are large against the weights: faster early epochs.
    init_std: float | None = Field(default=0.02, gt=0)
    batch_size: int = Field(default=128, gt=0)  # sequences per optimiser step (over all processes)
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    warmup: int = Field(default=100, ge=0)  # optimiser steps of linear learning-rate warm-up
    lr_schedule: Literal["constant", "cosine"] = "constant"  # cosine: lr falls towards 0 over `epochs`
    clip: float = Field(default=1.0, ge=0)  # max gradient norm, 0 = off
    loss: Literal["full", "sampled"] = "full"
    n_negatives: int = Field(default=256, gt=0)  # sampled loss: in-batch and uniform negatives, each
    use_event_types: bool = False  # add an event-type (view/cart/purchase) embedding to each input
    type_weights: dict[str, float] | None = None  # loss weight per target event type, e.g. {purchase = 4}
    patience: int = Field(default=10, ge=1)  # validations without a better NDCG@10 before stopping
    eval_every: int = Field(default=1, ge=1)  # epochs between validations
    time_limit: float = Field(default=0.0, ge=0)  # minutes of training before stopping (best kept); 0 = none
    stop_at_ndcg: float = Field(default=0.0, ge=0)  # stop once validation NDCG@10 reaches this; 0 = never
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: bf16/fp16 autocast on GPU only
    threads: int = Field(default=0, ge=0)  # CPU threads for torch, 0 = torch's default
    progress: bool = True
    checkpoint: str | None = None  # file to keep the best validated weights in while training (state_dict)

    @field_validator("heads")
    @classmethod
    def _heads_divide_dim(cls, heads: int, info) -> int:
        dim = info.data.get("dim")
        if dim is not None and dim % heads:
            raise ValueError(f"heads ({heads}) must divide dim ({dim})")
        return heads

    @field_validator("type_weights")
    @classmethod
    def _known_types(cls, weights: dict[str, float] | None) -> dict[str, float] | None:
        for name, w in (weights or {}).items():
            if name not in EVENT_TYPE_NAMES:
                raise ValueError(f"unknown event type {name!r}; expected one of {', '.join(EVENT_TYPE_NAMES)}")
            if w < 0:
                raise ValueError(f"weight of {name!r} must be >= 0")
        return weights


class SASRecNetwork(nn.Module):
    """Causal transformer over item sequences. Index 0 is padding; item i is stored at index i + 1.

    Positions count the real (non-padding) items, from the oldest or back from the newest, so left-padding a
    sequence to any length changes nothing.
    """

    def __init__(self, n_items: int, max_len: int, dim: int, layers: int, heads: int, dropout: float,
                 n_types: int = 0, ffn_mult: int = 1, init_std: float | None = None, norm: Norm = "pre",
                 from_oldest: bool = True, scale_items: bool = False, attn_dropout: float = 0.0):
        super().__init__()
        self.from_oldest = from_oldest
        self.item_scale = dim**0.5 if scale_items else 1.0
        self.item_embeddings = nn.Embedding(n_items + 1, dim, padding_idx=0)
        self.position_embeddings = nn.Embedding(max_len, dim)
        self.type_embeddings = nn.Embedding(n_types + 1, dim, padding_idx=0) if n_types else None
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, dropout, ffn_mult, norm, attn_dropout)
                                    for _ in range(layers))
        # pre- and query-norm: one LayerNorm on the blocks' output; post-norm normalises the summed input
        # embeddings instead (each block already ends in one), as BERT and RecBole's SASRec do
        self.post_norm = norm == "post"
        self.norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)
        for emb in (self.item_embeddings, self.position_embeddings, self.type_embeddings):
            if emb is not None:  # default: unit-variance logits at init (LayerNorm'd outputs have norm ~sqrt(dim))
                nn.init.normal_(emb.weight, std=init_std or dim**-0.5)
        with torch.no_grad():
            self.item_embeddings.weight[0].zero_()

    def embed_items(self, items: torch.Tensor) -> torch.Tensor:
        """int64 (B, T) -> input vectors (B, T, d); a content-aware network overrides this alone."""
        return self.item_embeddings(items)

    def forward(self, items: torch.Tensor, types: torch.Tensor | None = None, newest_only: bool = False
                ) -> torch.Tensor:
        """items, types: int64 (B, T), left-padded with 0 -> output vectors (B, T, d), or (B, 1, d) for the newest
        position alone (`newest_only`: the last block computes queries and feed-forward for that position only)."""
        keep = items > 0  # (B, T)
        if self.from_oldest:  # (B, T) index among the real items; padding gets 0 and is masked anyway
            positions = (keep.cumsum(1) - 1).clamp(min=0)
        else:  # (T,) distance from the newest item
            positions = torch.arange(items.shape[1] - 1, -1, -1, device=items.device)
        x = self.embed_items(items) * self.item_scale + self.position_embeddings(positions)  # (B, T, d)
        if self.type_embeddings is not None and types is not None:
            x = x + self.type_embeddings(types)
        if self.post_norm:
            x = self.norm(x)
        x = self.drop(x) * keep[..., None]
        mask = causal_padding_mask(keep)  # (B, 1, T, T)
        for i, block in enumerate(self.blocks):
            x = block(x, mask, newest_only=newest_only and i == len(self.blocks) - 1)
        return x if self.post_norm else self.norm(x)  # (B, T or 1, d)

    @property
    def output_embeddings(self) -> torch.Tensor:
        return self.item_embeddings.weight[1:]  # (n_items, d): input and output share the table

    def output_vectors(self, hidden: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """The vectors scored against `output_embeddings`: (B, T, d) -> (B, T, d'); here the outputs as they are."""
        return hidden


class SASRec(Recommender):
    """Next-item transformer; see the module docstring. `training_log` holds per-epoch loss, time, NDCG@10."""

    name = "sasrec"
    Config = SASRecConfig
    reason = "sequence"

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        self.network: SASRecNetwork | None = None
        self.training_log: list[dict] = []
        self.device = torch.device("cpu")

    def _build(self, n_items: int) -> SASRecNetwork:
        c = self.config
        n_types = len(EVENT_TYPE_NAMES) if c.use_event_types else 0
        return SASRecNetwork(n_items, c.max_len, c.dim, c.layers, c.heads, c.dropout, n_types, c.ffn_mult,
                             c.init_std, c.norm, c.positions == "oldest", c.scale_items, c.attn_dropout)

    @classmethod
    def saved_config(cls, values: dict) -> SASRecConfig:
        # models saved before `positions` was a choice counted them back from the newest item
        return super().saved_config({"positions": "newest", **values})

    def _fit(self, train: Interactions, catalog, validation: Validation | None) -> None:
        c = self.config
        if c.threads:
            torch.set_num_threads(c.threads)
        self.device = resolve_device(c.device)
        rank, world = distributed.setup(self.device.type)
        seed_everything(c.seed)  # same seed on every rank: identical initial weights
        self.network = self._build(train.n_items).to(self.device)

        # Each row: max_len + 1 events; inputs are all but the newest, targets all but the oldest.
        seqs = train.to_sequences(c.max_len + 1) if c.windows == "last" else train.to_sequences().windows(c.max_len + 1)
        seqs = seqs.select(np.flatnonzero(seqs.lengths >= 2))
        rows = torch.from_numpy(seqs.padded(c.max_len + 1))  # (U, L + 1), item + 1, 0 = pad
        types = torch.from_numpy(seqs.padded_types(c.max_len + 1)) if c.use_event_types or c.type_weights else None
        counts = np.bincount(rows[:, 1:][rows[:, 1:] > 0].numpy() - 1, minlength=train.n_items) + 1.0
        log_popularity = torch.from_numpy(np.log(counts / counts.sum())).float().to(self.device)
        type_lut = None
        if c.type_weights:  # index = stored type + 1 (0 = padding)
            lut = [0.0] + [c.type_weights.get(name, 1.0) for name in EVENT_TYPE_NAMES]
            type_lut = torch.tensor(lut, device=self.device)
        generator = torch.Generator(device=self.device).manual_seed(c.seed + rank)

        lengths = (rows[:, :-1] > 0).sum(1).numpy()

        def batches(epoch: int):
            rng = np.random.default_rng([c.seed, epoch])
            order = rng.permutation(len(rows))
            if c.batching == "by_length":  # sorted within random chunks of 32 batches: less padding to compute on
                chunk = c.batch_size * 32
                order = np.concatenate([part[np.argsort(-lengths[part], kind="stable")]
                                        for part in np.split(order, range(chunk, len(order), chunk))])
            steps = [order[s : s + c.batch_size] for s in range(0, len(order), c.batch_size)]
            for b in rng.permutation(len(steps)):
                if len(steps[b]) < world:  # every rank must take the same steps, or DDP's all-reduce hangs
                    continue
                idx = torch.from_numpy(steps[b][rank::world])  # this process's shard of the global batch
                batch = rows[idx]
                first = int((batch[:, :-1] > 0).any(0).int().argmax())  # drop columns that are padding in all rows
                t = None if types is None else types[idx][:, first:].to(self.device)
                yield batch[:, first:].to(self.device), t

        def loss_of(net: nn.Module, batch) -> torch.Tensor:
            seq, seq_types = batch
            inputs, targets = seq[:, :-1], seq[:, 1:]  # (B, T) each
            hidden = net(inputs, seq_types[:, :-1] if c.use_event_types else None)  # (B, T, d)
            hidden = self.network.output_vectors(hidden, inputs)
            keep = inputs > 0  # logits only where there is an input: most of a padded batch is skipped
            h, y = hidden[keep], targets[keep] - 1  # (N, d), (N,)
            weights = type_lut[seq_types[:, 1:][keep]] if type_lut is not None else None
            items = self.network.output_embeddings
            if c.loss == "full":
                return full_softmax_loss(h, items, y, weights)
            return sampled_softmax_loss(h, items, y, log_popularity, c.n_negatives, generator, weights)

        validate = None if validation is None else (lambda: validation(self))
        settings = LoopSettings(epochs=c.epochs, lr=c.lr, weight_decay=c.weight_decay, warmup_steps=c.warmup,
                                schedule=c.lr_schedule,
                                clip=c.clip, patience=c.patience, eval_every=c.eval_every, precision=c.precision,
                                time_limit=c.time_limit, stop_at=c.stop_at_ndcg, progress=c.progress,
                                checkpoint=c.checkpoint)
        self.training_log = train_loop(self.network, loss_of, batches, settings, self.device, validate)
        self.network.eval()

    def _states(self, part: Histories) -> torch.Tensor:
        """(b, d') the network's state after each history's newest item: what the output vectors are scored by."""
        net = self.network.eval()
        # pad to the longest history in this batch only: positions count real items, so padding changes nothing
        T = int(max(1, min(self.config.max_len, part.lengths.max(initial=1))))
        items = torch.from_numpy(part.padded(T)).to(self.device)  # (b, T)
        types = torch.from_numpy(part.padded_types(T)).to(self.device) if self.config.use_event_types else None
        return net.output_vectors(net(items, types, newest_only=True), items[:, -1:])[:, -1]

    @torch.no_grad()
    def score(self, histories: Histories, batch_size: int = 256) -> np.ndarray:
        """float32 [B, n_items]: scores of every item as the next one after each history (oldest first)."""
        items_t = self.network.eval().output_embeddings  # (n_items, d')
        out = np.empty((len(histories), self.n_items), dtype=np.float32)
        for start in range(0, len(histories), batch_size):
            part = histories.select(slice(start, start + batch_size))
            out[start : start + len(part)] = (self._states(part) @ items_t.T).float().cpu().numpy()
        return out

    # `score` as a dot product (`VectorScorer`), for the service's ANN index: query_vectors(h) @ item_vectors().T
    @torch.no_grad()
    def query_vectors(self, histories: Histories) -> np.ndarray:
        return self._states(histories).float().cpu().numpy()  # (B, d')

    @torch.no_grad()
    def item_vectors(self) -> np.ndarray:
        return self.network.eval().output_embeddings.float().cpu().numpy()  # (n_items, d')

    # ---- persistence: a torch state_dict, loaded without unpickling -------------------------------------
    def _save_weights(self, path: Path) -> None:
        torch.save({k: v.cpu() for k, v in self.network.state_dict().items()}, path / "weights.pt")

    def _load_weights(self, path: Path) -> None:
        state = torch.load(path / "weights.pt", map_location="cpu", weights_only=True)
        self.network = self._build(len(self.item_map))
        self.network.load_state_dict(state)
        self.network.eval()
