"""Evaluation splits: leave-one-out for sequence data, a global temporal cut-off for timestamped shop data.

Under the temporal protocol each period (validation, test) is evaluated in two views, as shops run two widgets:
- *discovery* (`Split.valid`, `Split.test`): targets are the items new to the shopper; items already in the
  history are excluded from the ranking (`EvalSet.exclude_seen = True`);
- *buy again* (`Split.valid_again`, `Split.test_again`): targets are every item the shopper bought in the period,
  repeat purchases included, and seen items stay in the ranking (`EvalSet.exclude_seen = False`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from deepshelf.data.interactions import Histories, Interactions


@dataclass
class EvalSet:
    """Users to evaluate: the history each is scored from (also what is excluded as seen) and the targets.

    `slices` mark users (bool [U]); `target_slices` mark targets (bool [len(targets.items)], aligned with
    `targets.items`), e.g. "new_items": a target first sold in the period. `exclude_seen` says whether the
    history's items are removed from the ranking, as `recommend(exclude_seen=...)` does for the server.
    """

    users: np.ndarray  # int64 [U] user indices
    inputs: Histories  # U rows: what the model sees
    targets: Histories  # U rows: items to find (one per user under leave-one-out)
    slices: dict[str, np.ndarray] = field(default_factory=dict)  # name -> bool [U] (e.g. cold users)
    target_slices: dict[str, np.ndarray] = field(default_factory=dict)  # name -> bool [n targets]
    exclude_seen: bool = True

    def __len__(self) -> int:
        return len(self.users)

    def select(self, rows: np.ndarray) -> "EvalSet":
        rows = np.asarray(rows, dtype=np.int64)
        # positions of the kept targets, gathered by the same row selection as the targets themselves
        positions = Histories(self.targets.indptr, np.arange(len(self.targets.items))).select(rows).items
        return EvalSet(self.users[rows], self.inputs.select(rows), self.targets.select(rows),
                       {k: v[rows] for k, v in self.slices.items()},
                       {k: v[positions] for k, v in self.target_slices.items()}, self.exclude_seen)

    def restrict_targets(self, keep: np.ndarray) -> tuple[np.ndarray, "EvalSet"]:
        """Only the targets where `keep` (bool [n targets]) holds, for the users left with at least one.

        Returns (rows of this set that remain: int64 [U'], the restricted set); a slice metric over those targets
        is then the ordinary metric of the rows' rankings against the restricted targets.
        """
        row_of = np.repeat(np.arange(len(self)), self.targets.lengths)
        counts = np.bincount(row_of[keep], minlength=len(self))
        rows = np.flatnonzero(counts)
        indptr = np.concatenate([[0], np.cumsum(counts[rows])]).astype(np.int64)
        targets = Histories(indptr, self.targets.items[keep])
        return rows, EvalSet(self.users[rows], self.inputs.select(rows), targets,
                             {k: v[rows] for k, v in self.slices.items()},
                             {k: v[keep] for k, v in self.target_slices.items()}, self.exclude_seen)


@dataclass
class Split:
    """Training events, the evaluation sets, and everything before the test cut (what a refit trains on).

    `before_test`: temporal — every event before the test period (training plus validation period);
    leave-one-out — every event except each evaluated user's test item (training plus validation targets).
    `valid_again` / `test_again`: the buy-again view of each period (temporal only, else None).
    `valid_cut` / `test_cut`: the start of each period in Unix seconds (temporal only, else None): what a fit on
    `train` / `before_test` may know is what happened before them (`Dataset.catalog_as_of`).
    """

    train: Interactions
    valid: EvalSet
    test: EvalSet
    protocol: str
    before_test: Interactions | None = None
    valid_again: EvalSet | None = None
    test_again: EvalSet | None = None
    valid_cut: int | None = None
    test_cut: int | None = None


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
    before_test_mask = np.ones(len(inter), bool)
    before_test_mask[test_pos] = False
    train_mask = before_test_mask.copy()
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
    return Split(train, valid, test, "leave-one-out", before_test=inter.subset(before_test_mask))


def _period_evalset(target_csr: sp.csr_matrix, history: Interactions, sold_before: np.ndarray,
                    exclude_seen: bool, min_targets: int = 1) -> EvalSet:
    """Users with at least `min_targets` targets in `target_csr` [n_users, n_items], scored from `history`."""
    users = np.flatnonzero(np.diff(target_csr.indptr) >= min_targets)
    rows = target_csr[users]
    targets = Histories(rows.indptr.astype(np.int64), rows.indices.astype(np.int32))
    inputs = history.to_sequences(users=users)
    new_user = inputs.lengths == 0
    new_item = ~sold_before[targets.items]
    has_new_item = np.bincount(np.repeat(np.arange(len(users)), targets.lengths)[new_item],
                               minlength=len(users)) > 0
    return EvalSet(users, inputs, targets,
                   {"new_users": new_user, "warm_users": ~new_user, "new_item_targets": has_new_item},
                   {"new_items": new_item}, exclude_seen)


def _period_targets(inter: Interactions, period_mask: np.ndarray, history: Interactions,
                    min_targets: int = 1) -> tuple[EvalSet, EvalSet]:
    """The period's two views: (discovery, buy again), both scored from the `history` before the period.

    Discovery: items the user bought in the period and never had an event on before, seen items excluded.
    Buy again: every item bought in the period (each once per user), seen items allowed.
    Slices: users with no history ("new_users") or some ("warm_users"), users with a target first sold in the
    period ("new_item_targets"); target slice "new_items": the targets no one had an event on before the period.
    """
    period_csr = inter.subset(period_mask).to_csr(binary=True)
    seen_csr = history.to_csr(binary=True)
    new_to_user = period_csr - period_csr.multiply(seen_csr > 0)
    new_to_user.eliminate_zeros()
    sold_before = np.zeros(inter.n_items, bool)
    sold_before[history.item] = True
    return (_period_evalset(new_to_user, history, sold_before, True, min_targets),
            _period_evalset(period_csr, history, sold_before, False, min_targets))


def temporal(inter: Interactions, test_days: float = 30.0, valid_days: float = 30.0) -> Split:
    """Global cut-off: the last `test_days` are the test period, the `valid_days` before them validation.

    Training uses events before the validation period; the test input is all history before the test period
    (training plus validation events, `Split.before_test`), so a shopper's latest behaviour counts, as it would
    when served.
    """
    end = int(inter.timestamp.max())
    test_cut = end - int(test_days * 86400)
    valid_cut = test_cut - int(valid_days * 86400)
    train = inter.subset(inter.timestamp < valid_cut)
    before_test = inter.subset(inter.timestamp < test_cut)
    valid, valid_again = _period_targets(inter, (inter.timestamp >= valid_cut) & (inter.timestamp < test_cut), train)
    test, test_again = _period_targets(inter, inter.timestamp >= test_cut, before_test)
    return Split(train, valid, test, "temporal", before_test=before_test, valid_again=valid_again,
                 test_again=test_again, valid_cut=valid_cut, test_cut=test_cut)


def make_split(inter: Interactions, protocol: str, **kwargs) -> Split:
    if protocol == "leave-one-out":
        return leave_one_out(inter, **kwargs)
    if protocol == "temporal":
        return temporal(inter, **kwargs)
    raise ValueError(f"unknown split protocol {protocol!r}; expected leave-one-out or temporal")
