"""Baskets: one shopper's events close in time, the unit an anonymous visitor's session is like.

A shop's order (an invoice) is one shopper's events sharing a timestamp; a web visit is a run of events with short
gaps. `basket_view` turns events into one "user" per basket, so any registered model fit on it learns which
products go together in one basket (an item-kNN on it is "bought in the same order", not "bought by the same
customer over a year"). `visit_rows` says which histories of a batch are such a visit, as served.
"""

from __future__ import annotations

import numpy as np

from deepshelf.data.idmap import IdMap
from deepshelf.data.interactions import Histories, Interactions


def basket_ids(inter: Interactions, gap_s: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(order, basket): the events' permutation into shopper-then-time order (stable: a basket's items keep their
    order in the file) and, along it, each event's basket number (int64, 0-based, in that order). A basket is a
    run of one shopper's events whose consecutive gaps are at most `gap_s` seconds (0: the same timestamp)."""
    order = inter.time_order()
    user, ts = inter.user[order], inter.timestamp[order]
    starts = np.ones(len(order), bool)
    starts[1:] = (user[1:] != user[:-1]) | (np.diff(ts) > gap_s)
    return order, np.cumsum(starts) - 1


def basket_view(inter: Interactions, gap_s: float = 0.0) -> Interactions:
    """The same events with each basket as its own user (ids "0", "1", ... in shopper-then-time order), over
    the same item map; within a basket the events keep their order."""
    order, basket = basket_ids(inter, gap_s)
    n = int(basket[-1]) + 1 if len(basket) else 0
    users = IdMap(np.arange(n).astype(str))
    return Interactions(basket, inter.item[order], users, inter.item_map, inter.timestamp[order],
                        inter.type[order], inter.weight[order])


def visit_rows(histories: Histories, after: float, gap_s: float) -> np.ndarray:
    """bool [B]: the histories that are one live visit: at least one event, every event later than `after` (the
    newest event a model was fit on: nothing of it was seen in training) and no more than `gap_s` seconds
    between the oldest and the newest. An anonymous session (`POST /v1/sessions/recommendations`, all its items
    stamped with the request's time) is one; a known shopper's history that reaches back into the training data
    is not. Histories without timestamps are never visits."""
    B = len(histories)
    if histories.timestamps is None or not len(histories.items):
        return np.zeros(B, bool)
    lengths = histories.lengths
    row = np.repeat(np.arange(B), lengths)
    ts = histories.timestamps.astype(np.float64)
    oldest = np.full(B, np.inf)
    newest = np.full(B, -np.inf)
    np.minimum.at(oldest, row, ts)
    np.maximum.at(newest, row, ts)
    return (lengths > 0) & (oldest > after) & (newest - oldest <= gap_s)
