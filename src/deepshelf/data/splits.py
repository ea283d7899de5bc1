"""Evaluation splits: leave-one-out for sequence data, a global temporal cut-off for timestamped shop data."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from deepshelf.data.interactions import Histories, Interactions


@dataclass
class EvalSet:
    """Users to evaluate: the history each is scored from (also what is excluded as seen) and the targets."""

    users: np.ndarray  # int64 [U] user indices
    inputs: Histories  # U rows: what the model sees
    targets: Histories  # U rows: items to find (one per user under leave-one-out)
    slices: dict[str, np.ndarray] = field(default_factory=dict)  # name -> bool [U] (e.g. cold users)

    def __len__(self) -> int:
        return len(self.users)

    def select(self, rows: np.ndarray) -> "EvalSet":
        return EvalSet(self.users[rows], self.inputs.select(rows), self.targets.select(rows),
                       {k: v[rows] for k, v in self.slices.items()})


@dataclass
class Split:
    train: Interactions
    valid: EvalSet
    test: EvalSet
    protocol: str


def leave_one_out(inter: Interactions, min_events: int = 3) -> Split:
    """Per user: last event = test target, second-to-last = validation target, the rest trains.

    Test input is the whole history before the last item; validation input the history before the second-to-last.
    Users with fewer than `min_events` events only train.
    """
    order = inter.time_order()
    counts = np.bincount(inter.user[order], minlength=inter.n_users)
    ends = np.cumsum(counts)  # one past each user's last event in time order
    eligible = np.flatnonzero(counts >= min_events)
    test_pos, valid_pos = order[ends[eligible] - 1], order[ends[eligible] - 2]
    train_mask = np.ones(len(inter), bool)
    train_mask[test_pos] = False
    train_mask[valid_pos] = False
    train = inter.subset(train_mask)

    full = inter.to_sequences(users=eligible)
    lengths = full.lengths
    # inputs = each row cut short by 1 (test) or 2 (validation) items: a vectorised gather over the CSR rows
    def truncated(drop: int) -> Histories:
        keep = lengths - drop
        indptr = np.concatenate([[0], np.cumsum(keep)]).astype(np.int64)
        src = np.repeat(full.indptr[:-1] - indptr[:-1], keep) + np.arange(indptr[-1])
        return Histories(indptr, full.items[src], None if full.types is None else full.types[src],
                         None if full.timestamps is None else full.timestamps[src])

    one = np.arange(len(eligible) + 1, dtype=np.int64)
    test = EvalSet(eligible, truncated(1), Histories(one, inter.item[test_pos]))
    valid = EvalSet(eligible, truncated(2), Histories(one, inter.item[valid_pos]))
    return Split(train, valid, test, "leave-one-out")


def _period_targets(inter: Interactions, period_mask: np.ndarray, history: Interactions, min_targets: int = 1):
    """Users active in a period, their history before it, and the new items they bought in it."""
    period = inter.subset(period_mask)
    target_csr = period.to_csr(binary=True)
    seen_csr = history.to_csr(binary=True)
    target_csr = target_csr - target_csr.multiply(seen_csr > 0)  # seen items are excluded from ranking
    target_csr.eliminate_zeros()
    users = np.flatnonzero(np.diff(target_csr.indptr) >= min_targets)
    targets = Histories(np.concatenate([[0], np.cumsum(np.diff(target_csr.indptr)[users])]).astype(np.int64),
                        target_csr[users].indices.astype(np.int32))
    inputs = history.to_sequences(users=users)
    new_user = inputs.lengths == 0
    train_items = np.zeros(inter.n_items, bool)
    train_items[history.item] = True
    new_item_target = ~train_items[targets.items]
    has_new_item = np.add.reduceat(new_item_target, targets.indptr[:-1]) > 0 if len(users) else np.zeros(0, bool)
    return EvalSet(users, inputs, targets, {"new_users": new_user, "warm_users": ~new_user,
                                            "new_item_targets": has_new_item})


def temporal(inter: Interactions, test_days: float = 30.0, valid_days: float = 30.0) -> Split:
    """Global cut-off: the last `test_days` are the test period, the `valid_days` before them validation.

    Training uses events before the validation period; the test input is all history before the test period
    (training plus validation events), so a shopper's latest behaviour counts, as it would when served.
    """
    end = int(inter.timestamp.max())
    test_cut = end - int(test_days * 86400)
    valid_cut = test_cut - int(valid_days * 86400)
    train = inter.subset(inter.timestamp < valid_cut)
    before_test = inter.subset(inter.timestamp < test_cut)
    valid = _period_targets(inter, (inter.timestamp >= valid_cut) & (inter.timestamp < test_cut), train)
    test = _period_targets(inter, inter.timestamp >= test_cut, before_test)
    return Split(train, valid, test, "temporal")


def make_split(inter: Interactions, protocol: str, **kwargs) -> Split:
    if protocol == "leave-one-out":
        return leave_one_out(inter, **kwargs)
    if protocol == "temporal":
        return temporal(inter, **kwargs)
    raise ValueError(f"unknown split protocol {protocol!r}; expected leave-one-out or temporal")
