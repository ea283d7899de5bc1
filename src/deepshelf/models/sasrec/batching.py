"""SASRec's training data: shoppers' event windows as padded rows, dealt into batches per epoch."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from deepshelf.data.interactions import Interactions
from deepshelf.models.sasrec.config import SASRecConfig


class TrainingBatches:
    """Rows of `max_len + 1` events (inputs are all but the newest, targets all but the oldest), left-padded.

    Calling it with an epoch number yields that epoch's batches `(items, types)` on `device`: int64 (b, T + 1)
    each (`types` None unless the config uses event types or type weights), this process's shard of each global
    batch when training runs on several processes.
    """

    def __init__(self, train: Interactions, config: SASRecConfig, device: torch.device, rank: int = 0,
                 world: int = 1):
        c = self.config = config
        self.device, self.rank, self.world = device, rank, world
        seqs = train.to_sequences()
        if c.repeats == "first":
            seqs = seqs.first_occurrences()
        seqs = seqs.newest(c.max_len + 1) if c.windows == "last" else seqs.windows(c.max_len + 1)
        seqs = seqs.select(np.flatnonzero(seqs.lengths >= 2))
        self.rows = torch.from_numpy(seqs.padded(c.max_len + 1))  # (U, L + 1), item + 1, 0 = pad
        self.types = (torch.from_numpy(seqs.padded_types(c.max_len + 1))
                      if c.use_event_types or c.type_weights else None)
        self.lengths = (self.rows[:, :-1] > 0).sum(1).numpy()  # input length of each row

    def log_popularity(self, n_items: int) -> torch.Tensor:
        """(n_items,) log share of each item among the targets (add-one smoothed): the sampled loss's correction."""
        targets = self.rows[:, 1:]
        counts = np.bincount(targets[targets > 0].numpy() - 1, minlength=n_items) + 1.0
        return torch.from_numpy(np.log(counts / counts.sum())).float().to(self.device)

    def __len__(self) -> int:
        """Batches per epoch (what `__call__` yields): the training loop's bar moves through the first epoch too."""
        n, size = len(self.rows), self.config.batch_size
        steps = -(-n // size)
        return steps - int(steps > 0 and n - (steps - 1) * size < self.world)

    def __call__(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        c = self.config
        rng = np.random.default_rng([c.seed, epoch])
        order = rng.permutation(len(self.rows))
        if c.batching == "by_length":  # sorted within random chunks of 32 batches: less padding to compute on
            chunk = c.batch_size * 32
            order = np.concatenate([part[np.argsort(-self.lengths[part], kind="stable")]
                                    for part in np.split(order, range(chunk, len(order), chunk))])
        steps = [order[s : s + c.batch_size] for s in range(0, len(order), c.batch_size)]
        for b in rng.permutation(len(steps)):
            if len(steps[b]) < self.world:  # every rank must take the same steps, or DDP's all-reduce hangs
                continue
            idx = torch.from_numpy(steps[b][self.rank :: self.world])  # this process's shard of the global batch
            batch = self.rows[idx]
            types = None if self.types is None else self.types[idx]
            batch, types = trim_padding(batch, types)
            yield batch.to(self.device), None if types is None else types.to(self.device)


def trim_padding(seq: torch.Tensor, types: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Drop the leading columns that are padding in every row's input (all but the newest column)."""
    first = int((seq[:, :-1] > 0).any(0).int().argmax())
    return seq[:, first:], None if types is None else types[:, first:]


def length_groups(seq: torch.Tensor, types: torch.Tensor | None, groups: int
                  ) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """A batch's rows in up to `groups` parts of similar input length, each padded only to its own longest row.

    Rows are independent in the network (causal attention within a row, everything else per position), so the
    parts' outputs are the whole batch's; a shuffled batch of short histories with one long one then stops
    computing on the long one's padding in every other row.
    """
    if groups <= 1 or len(seq) <= 1:
        return [(seq, types)]
    order = torch.argsort((seq[:, :-1] > 0).sum(1), descending=True, stable=True)
    return [trim_padding(seq[part], None if types is None else types[part])
            for part in torch.tensor_split(order, min(groups, len(seq)))]
