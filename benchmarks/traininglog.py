"""Reading a run's training log (`metrics.json` -> `training`: one dict per epoch), shared by the benchmarks."""

from __future__ import annotations

KEY = "valid_ndcg@10"


def best_validated(log: list[dict], key: str = KEY) -> dict | None:
    """The epoch with the highest validation metric; None when the log has no validations."""
    return max((e for e in log if key in e), key=lambda e: e[key], default=None)


def first_reaching(log: list[dict], level: float, key: str = KEY) -> dict | None:
    """The first epoch whose validation metric is at least `level`; None when none is."""
    return next((e for e in log if e.get(key, float("-inf")) >= level), None)
