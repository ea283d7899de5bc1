"""The SASRec estimator: builds the network and training batches, owns the loss, device and epochs (through
`deepshelf.training.loop`), and scores raw histories, so an anonymous session is served like a known shopper."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from deepshelf.data.interactions import Histories, Interactions
from deepshelf.data.schema import EVENT_TYPE_NAMES
from deepshelf.models.base import Recommender, Validation
from deepshelf.models.losses import full_softmax_loss, sampled_softmax_loss
from deepshelf.models.sasrec.batching import TrainingBatches, length_groups
from deepshelf.models.sasrec.config import SASRecConfig, network_args
from deepshelf.models.sasrec.network import SASRecNetwork
from deepshelf.training import distributed
from deepshelf.training.loop import LoopSettings, resolve_device, seed_everything, train_loop


# The largest item table scoring keeps between calls (a view of the id embeddings is always kept: it costs
# nothing); past it, a content model's table (every product's text projected) is built per call as before.
KEEP_TABLE_BYTES = 256 * 2**20


class SASRec(Recommender):
    """Next-item transformer; see the package docstring. `training_log` holds per-epoch loss, time, NDCG@10."""

    name = "sasrec"
    Config = SASRecConfig
    reason = "sequence"

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        self.network: SASRecNetwork | None = None
        self.training_log: list[dict] = []
        self.device = torch.device("cpu")

    def _build(self, n_items: int) -> SASRecNetwork:
        return SASRecNetwork(n_items, **network_args(self.config))

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
        batches = TrainingBatches(train, c, self.device, rank, world)
        log_popularity = batches.log_popularity(train.n_items) if c.loss == "sampled" else None
        type_lut = None
        if c.type_weights:  # index = stored type + 1 (0 = padding)
            lut = [0.0] + [c.type_weights.get(name, 1.0) for name in EVENT_TYPE_NAMES]
            type_lut = torch.tensor(lut, device=self.device)
        generator = torch.Generator(device=self.device).manual_seed(c.seed + rank)

        groups = c.length_groups if world == 1 else 1  # DDP expects one forward pass per backward

        def loss_of(net: nn.Module, batch) -> torch.Tensor:
            hs, ys, ws = [], [], []
            for seq, seq_types in length_groups(*batch, groups):
                inputs, targets = seq[:, :-1], seq[:, 1:]  # (b, T) each
                hidden = net(inputs, seq_types[:, :-1] if c.use_event_types else None)  # (b, T, d)
                hidden = self.network.output_vectors(hidden, inputs)
                keep = inputs > 0  # logits only where there is an input: most of a padded batch is skipped
                hs.append(hidden[keep])  # (n, d)
                ys.append(targets[keep] - 1)  # (n,)
                if type_lut is not None:
                    ws.append(type_lut[seq_types[:, 1:][keep]])
            h, y = torch.cat(hs), torch.cat(ys)  # (N, d), (N,)
            weights = torch.cat(ws) if ws else None
            items = self.network.output_embeddings
            if c.loss == "full":
                return full_softmax_loss(h, items, y, weights)
            return sampled_softmax_loss(h, items, y, log_popularity, c.n_negatives, generator, weights)

        def validate() -> float:  # the fused optimizer's steps leave the weights' version counters as they were
            self._forget_table()
            return validation(self)

        settings = LoopSettings(epochs=c.epochs, lr=c.lr, weight_decay=c.weight_decay, warmup_steps=c.warmup,
                                schedule=c.lr_schedule, clip=c.clip, patience=c.patience, eval_every=c.eval_every,
                                precision=c.precision, time_limit=c.time_limit, stop_at=c.stop_at_ndcg,
                                progress=c.progress, checkpoint=c.checkpoint)
        self.training_log = train_loop(self.network, loss_of, batches, settings, self.device,
                                       None if validation is None else validate)
        self.network.eval()
        self._forget_table()

    def refit_overrides(self) -> dict:
        """The epoch with the best validation NDCG@10 (whose weights `fit` kept), for a refit without validation."""
        validated = [e for e in self.training_log if "valid_ndcg@10" in e]
        if not validated:
            return {}
        return {"epochs": max(validated, key=lambda e: e["valid_ndcg@10"])["epoch"]}

    def _states(self, part: Histories) -> torch.Tensor:
        """(b, d') the network's state after each history's newest item: what the output vectors are scored by."""
        net = self.network.eval()
        if self.config.repeats == "first":
            part = part.first_occurrences()
        # pad to the longest history in this batch only: positions count real items, so padding changes nothing
        T = int(max(1, min(self.config.max_len, part.lengths.max(initial=1))))
        items = torch.from_numpy(part.padded(T)).to(self.device)  # (b, T)
        types = torch.from_numpy(part.padded_types(T)).to(self.device) if self.config.use_event_types else None
        return net.output_vectors(net(items, types, newest_only=True), items)[:, -1]

    @torch.no_grad()
    def score(self, histories: Histories, batch_size: int = 256) -> np.ndarray:
        """float32 [B, n_items]: scores of every item as the next one after each history (oldest first)."""
        items_t = self._output_table()  # (n_items, d')
        out = np.empty((len(histories), self.n_items), dtype=np.float32)
        # histories of similar length share a batch, so few are padded far beyond their own length (padding
        # changes no score: positions count real items)
        order = np.argsort(np.minimum(histories.lengths, self.config.max_len), kind="stable")
        for start in range(0, len(histories), batch_size):
            rows = order[start : start + batch_size]
            out[rows] = (self._states(histories.select(rows)) @ items_t.T).float().cpu().numpy()
        return out

    # `score` as a dot product (`VectorScorer`), for the service's ANN index: query_vectors(h) @ item_vectors().T
    @torch.no_grad()
    def query_vectors(self, histories: Histories) -> np.ndarray:
        return self._states(histories).float().cpu().numpy()  # (B, d')

    @torch.no_grad()
    def item_vectors(self) -> np.ndarray:
        return self._output_table().float().cpu().numpy()  # (n_items, d')

    def _output_table(self) -> torch.Tensor:
        """The eval-mode `output_embeddings`, kept until a parameter or buffer of the network is replaced or
        changed in place (loading, the content model's calibration and imputation: their version counters move)
        or `_forget_table` is called (training: the fused optimizer's steps move no counter). The content-aware
        model projects every product's text to build it, which cost a served basket about as much as the rest of
        its answer (docs/benchmarks.md, "Anonymous baskets (Online Retail)")."""
        net = self.network.eval()
        tensors = (*net.parameters(), *net.buffers())
        versions = tuple(t._version for t in tensors)  # bumped by every in-place change
        held = self.__dict__.get("_table_held")
        if (held is None or held[1] != versions or len(held[0]) != len(tensors)
                or any(a is not b for a, b in zip(held[0], tensors))):
            table = net.output_embeddings
            copy = table.untyped_storage().data_ptr() != net.item_embeddings.weight.untyped_storage().data_ptr()
            if copy and table.numel() * table.element_size() > KEEP_TABLE_BYTES:
                return table  # a large catalogue's own table: built per call rather than kept beside the weights
            held = (tensors, versions, table)
            self._table_held = held  # one tuple, replaced whole: a concurrent reader sees the old or the new
        return held[2]

    def _forget_table(self) -> None:
        self._table_held = None

    # ---- persistence: a torch state_dict, loaded without unpickling -------------------------------------
    def _save_weights(self, path: Path) -> None:
        torch.save({k: v.cpu() for k, v in self.network.state_dict().items()}, path / "weights.pt")

    def _load_weights(self, path: Path) -> None:
        state = torch.load(path / "weights.pt", map_location="cpu", weights_only=True)
        self.network = self._build(len(self.item_map))
        self.network.load_state_dict(state)
        self.network.eval()
