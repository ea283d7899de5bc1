"""Reading a run's training log (`metrics.json` -> `training`: one dict per epoch), shared by the benchmarks."""

from __future__ import annotations

KEY = "valid_ndcg@10"


def best_validated(log: list[dict], key: str = KEY) -> dict | None:
    """The epoch with the highest validation metric; None when the log has no validations."""
    return max((e for e in log if key in e), key=lambda e: e[key], default=None)


def first_reaching(log: list[dict], level: float, key: str = KEY) -> dict | None:
    """The first epoch whose validation metric is at least `level`; None when none is."""
    return next((e for e in log if e.get(key, float("-inf")) >= level), None)


def time_to(log: list[dict], level: float, clock: str, key: str = KEY) -> float | None:
    """`clock` (a cumulative field of the entry, e.g. "train_total") of the first epoch at or above `level`."""
    entry = first_reaching(log, level, key)
    return None if entry is None else entry[clock]


def with_totals(epochs: list[dict]) -> list[dict]:
    """Each epoch with `train_total`: training seconds so far, validations left out (cumulative `train_seconds`)."""
    total, out = 0.0, []
    for e in epochs:
        total += e["train_seconds"]
        out.append({**e, "train_total": round(total, 3)})
    return out
