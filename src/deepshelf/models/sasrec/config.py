"""SASRec's typed config, and the one place its network's constructor arguments are built from it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from deepshelf.data.schema import EVENT_TYPE_NAMES
from deepshelf.models.base import ModelConfig
from deepshelf.models.layers import Norm


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
    # repeated items in a history: "keep" every event, or "first": only each item's first event, in training and
    # scoring alike, so every target is an item new to the shopper (a shop's purchases repeat a lot, and the
    # discovery list excludes what the shopper has bought; benchmarks/sasrec_shop.py measures both)
    repeats: Literal["keep", "first"] = "keep"
    # how sequences meet in a batch: "by_length" sorts them by length within random chunks of 32 batches (less
    # padding to compute on; as the loss is a mean over a batch's positions, each sequence then weighs about the
    # same), "shuffled" draws them at random (each position weighs about the same, as in SASRec and RecBole)
    batching: Literal["by_length", "shuffled"] = "by_length"
    # a batch's rows go through the network in this many groups of similar length, each padded only to its own
    # longest row (same outputs, loss and gradients as one padded block; only the dropout draws differ); 1 = one
    # block padded to the batch's longest row, as runs trained before this option. Single process only.
    length_groups: int = Field(default=4, ge=1)
    # what a position embedding encodes: an item's index from the oldest item the model sees ("oldest", as
    # RecBole and SASRec+ do), so an output never depends on how many events come after it, or its distance
    # back from the newest ("newest", as the original SASRec's left-padded arrays); runs saved before this
    # was a choice counted from the newest
    positions: Literal["oldest", "newest"] = "oldest"
    dropout: float = Field(default=0.2, ge=0.0, lt=1.0)
    attn_dropout: float = Field(default=0.0, ge=0.0, lt=1.0)  # on attention weights, as the original SASRec
    # std of the item and position embeddings at init; None = dim**-0.5 (unit-variance logits). A small value
    # (0.02) starts from near-uniform logits, where Adam's steps are large against the weights.
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


def network_args(c: SASRecConfig) -> dict:
    """The sequence network's constructor arguments (all but the item count), for SASRec and every network built
    on it (the content-aware one adds its own)."""
    return dict(max_len=c.max_len, dim=c.dim, layers=c.layers, heads=c.heads, dropout=c.dropout,
                n_types=len(EVENT_TYPE_NAMES) if c.use_event_types else 0, ffn_mult=c.ffn_mult,
                init_std=c.init_std, norm=c.norm, from_oldest=c.positions == "oldest", scale_items=c.scale_items,
                attn_dropout=c.attn_dropout)
