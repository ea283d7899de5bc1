"""Evaluation report: a markdown table plus PNG plots (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepshelf.evaluation.evaluate import EvalResult

HISTORY_BUCKETS = (0, 1, 5, 10, 20, 50, 100, 200, 10**9)
COUNT_COLUMNS = ("users", "targets")


def _cell(value: float, column: str) -> str:
    return f"{value:.0f}" if column in COUNT_COLUMNS and np.isfinite(value) else f"{value:.4f}"


def markdown_table(rows: dict[str, dict[str, float]], columns: list[str]) -> str:
    """`rows`: label -> metrics. One markdown table with the given metric columns."""
    head = "| | " + " | ".join(columns) + " |\n|---|" + "---:|" * len(columns) + "\n"
    body = "".join(
        f"| {label} | " + " | ".join(_cell(m.get(c, float("nan")), c) for c in columns) + " |\n"
        for label, m in rows.items()
    )
    return head + body


def by_history_length(result: EvalResult, metric: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Mean `metric` per bucket of history length: labels, means, user counts."""
    edges = np.asarray(HISTORY_BUCKETS)
    bucket = np.searchsorted(edges, result.history_length, side="right") - 1
    labels, means, counts = [], [], []
    for b in range(len(edges) - 1):
        mask = bucket == b
        if mask.any():
            hi = "+" if edges[b + 1] >= 10**9 else f"-{edges[b + 1] - 1}"
            labels.append(f"{edges[b]}{hi}")
            means.append(result.per_user[metric][mask].mean())
            counts.append(int(mask.sum()))
    return labels, np.asarray(means), np.asarray(counts)


def write_report(folder: Path, title: str, results: dict[str, EvalResult], item_popularity: np.ndarray,
                 k: int = 10) -> Path:
    """Write `report.md` and `plots/*.png` for the given evaluation sets ("valid", "test", ...) into `folder`.

    A result evaluated with seen items allowed (the buy-again view) is labelled so in the tables.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = folder / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    columns = [f"hr@{k}", f"ndcg@{k}", f"mrr@{k}", f"recall@{k}", f"coverage@{k}", f"popularity@{k}"]
    labels = {name: name if r.exclude_seen else f"{name} (seen items allowed)" for name, r in results.items()}
    text = [f"# {title}\n", "## Metrics (full ranking over all items, seen items excluded unless stated)\n",
            markdown_table({labels[name]: r.metrics for name, r in results.items()}, columns)]
    test = results.get("test") or next(iter(results.values()))
    slice_columns = [f"hr@{k}", f"recall@{k}", f"ndcg@{k}", "users", "targets"]
    for name, r in results.items():
        if name.startswith("test") and r.slices:
            text += [f"\n## Slices of {labels[name]}\n", "\"new_items\" counts only the targets first sold in "
                     "the period; the other slices are groups of users with all their targets.\n\n",
                     markdown_table(r.slices, slice_columns)]

    labels, means, counts = by_history_length(test, f"ndcg@{k}")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(labels, means, color="#3b6ea5")
    ax.set_xlabel("shopper history length (events)")
    ax.set_ylabel(f"NDCG@{k}")
    ax.set_title("Test quality by history length")
    for x, (m, c) in enumerate(zip(means, counts)):
        ax.annotate(f"n={c}", (x, m), ha="center", va="bottom", fontsize=7)
    fig.tight_layout()
    fig.savefig(plots / "by_history_length.png", dpi=110)
    plt.close(fig)

    rec = test.ranked[:, :k]
    rec = rec[rec >= 0]
    order = np.argsort(-item_popularity)
    rank_of = np.empty_like(order)
    rank_of[order] = np.arange(len(order))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(rank_of[rec] / max(len(order) - 1, 1) * 100, bins=20, color="#c9733a")
    ax.set_xlabel("popularity rank of recommended item (percentile, 0 = most popular)")
    ax.set_ylabel("recommendations")
    ax.set_title(f"Popularity of recommended items (coverage@{k} = {test.metrics[f'coverage@{k}']:.3f})")
    fig.tight_layout()
    fig.savefig(plots / "popularity.png", dpi=110)
    plt.close(fig)

    text += ["\n## Plots\n", "![quality by history length](plots/by_history_length.png)\n\n",
             "![popularity of recommendations](plots/popularity.png)\n"]
    out = folder / "report.md"
    out.write_text("".join(text))
    return out
