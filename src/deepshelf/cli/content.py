"""`deepshelf similar` and `deepshelf search`: export similar products and search hits in original ids."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from deepshelf.errors import DeepshelfError
from deepshelf.files import atomic_path

log = logging.getLogger(__name__)


def export_similar(run: Path, mode: str, k: int, output: Path, exact: bool = False,
                   in_stock_only: bool = False, batch: int = 2048) -> int:
    """Write `item_id,similar_item_id,rank,score` for every catalogue product; returns the number of rows."""
    import polars as pl

    from deepshelf.content.similar import SimilarIndex

    index = SimilarIndex.load(run)
    in_stock = None
    if in_stock_only:
        in_stock = _in_stock_mask(run, index.item_ids)
    parts = []
    for start in range(0, len(index), batch):
        rows = np.arange(start, min(start + batch, len(index)))
        idx, scores = index.similar(rows, k, mode, in_stock=in_stock, exact=exact)
        ok = idx >= 0
        parts.append(pl.DataFrame({
            "item_id": np.repeat(index.item_ids[rows], ok.sum(1)),
            "similar_item_id": index.item_ids[idx[ok]],
            "rank": np.broadcast_to(np.arange(1, idx.shape[1] + 1), idx.shape)[ok].astype(np.int32),
            "score": scores[ok]}))
    table = pl.concat(parts)
    with atomic_path(output) as tmp:
        table.write_csv(tmp)
    return table.height


def _in_stock_mask(run: Path, item_ids: np.ndarray) -> np.ndarray:
    from deepshelf.runs.pipeline import run_catalog

    catalog = run_catalog(run)
    if catalog is None:
        raise DeepshelfError(f"--in-stock-only: the dataset of {run} has no catalogue to read stock from")
    rows = catalog.item_map.lookup(item_ids)
    stock = catalog.table["in_stock"].to_numpy()
    return np.where(rows >= 0, stock[np.maximum(rows, 0)], False).astype(bool)


def read_queries(path: Path) -> list[tuple[str, str]]:
    """`query_id<TAB>query text` lines; a malformed or blank line is skipped with a warning naming it."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DeepshelfError(f"{path}: queries file not found") from None
    except UnicodeDecodeError:
        raise DeepshelfError(f"{path}: not UTF-8 text") from None
    out = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        qid, sep, text = line.partition("\t")
        if not sep or not qid.strip():
            log.warning("%s line %d skipped: expected query_id<TAB>query text", path, number)
            continue
        out.append((qid.strip(), text))
    return out


def export_search(run: Path, queries: Path, k: int, output: Path, by: str = "hybrid", user: str | None = None,
                  rerank_run: Path | None = None) -> tuple[int, int]:
    """Write `query_id,item_id,rank,score`; returns (rows written, queries skipped)."""
    import polars as pl

    from deepshelf.content.search import SearchIndex

    index = SearchIndex.load(run)
    if by == "hybrid" and index.text_tower is None:  # as the server does: a run without photos searches by text
        log.warning("%s has no photo alignment (trained without images): searching by text", run)
        by = "text"
    history, scorer = None, None
    if user is not None:
        history, scorer = _user_history(index, user, rerank_run or run)
    rows, skipped = [], 0
    for qid, text in read_queries(queries):
        try:
            idx, scores = index.search_rows(text, k, by=by, user_history=history, scorer=scorer)
        except DeepshelfError as exc:
            if "--by" in str(exc) or "alignment" in str(exc):
                raise
            log.warning("query %s skipped: %s", qid, exc)
            skipped += 1
            continue
        rows.append(pl.DataFrame({"query_id": [qid] * len(idx), "item_id": index.item_ids[idx],
                                  "rank": np.arange(1, len(idx) + 1, dtype=np.int32), "score": scores}))
    if not rows:
        raise DeepshelfError(f"{queries}: no usable queries ({skipped} skipped)")
    table = pl.concat(rows)
    with atomic_path(output) as tmp:
        table.write_csv(tmp)
    return table.height, skipped


def _user_history(index, user: str, rerank_run: Path):
    """The shopper's events (oldest first) from the re-ranking run's dataset, as rows of `index`."""
    from deepshelf.runs.artifacts import load_run
    from deepshelf.runs.sources import load_source

    loaded = load_run(rerank_run)
    ds = load_source(loaded.config.dataset, loaded.config.catalog)
    if ds.interactions is None or user not in ds.interactions.user_map:
        raise DeepshelfError(f"--user {user!r}: unknown shopper in dataset {loaded.config.dataset!r}")
    inter = ds.interactions
    mine = np.flatnonzero(inter.user == inter.user_map.index(user))
    mine = mine[np.argsort(inter.timestamp[mine], kind="stable")]
    ids = inter.item_map.ids[inter.item[mine]].astype(str)
    lookup = {item: i for i, item in enumerate(index.item_ids.tolist())}
    history = [lookup[i] for i in ids if i in lookup]
    return np.asarray(history, np.int64), loaded.model


def print_content_metrics(metrics: dict, console) -> None:
    """The content P@k table of a catalogue run (used by `deepshelf train`)."""
    from rich.table import Table

    content = metrics.get("content", {})
    attrs = content.get("attributes", [])
    table = Table(title=f"{metrics['model']} on {metrics['dataset']}: held-out P@{content.get('k', 10)}")
    table.add_column("mode")
    for a in attrs:
        table.add_column(a, justify="right")
    for mode, values in content.items():
        if isinstance(values, dict):
            table.add_row(mode, *(f"{values.get(a, float('nan')):.4f}" for a in attrs))
    console.print(table)
    console.print(f"training {metrics['train_seconds']:.1f}s on {metrics['device']}")


def register(app) -> None:
    """Add `similar` and `search` to the deepshelf Typer app."""

    @app.command()
    def similar(
        run: Annotated[Path, typer.Option(help="run folder trained with --model content")],
        output: Annotated[Path, typer.Option(help="CSV to write: item_id,similar_item_id,rank,score")],
        mode: Annotated[str, typer.Option(help="behavior, text, visual or hybrid")] = "hybrid",
        k: Annotated[int, typer.Option(min=1, max=1000)] = 10,
        exact: Annotated[bool, typer.Option(help="exact top-k instead of the FAISS index")] = False,
        in_stock_only: Annotated[bool, typer.Option(help="leave out products marked out of stock")] = False,
    ) -> None:
        """Export the k most similar products of every catalogue product, in original ids."""
        rows = export_similar(run, mode, k, output, exact=exact, in_stock_only=in_stock_only)
        typer.echo(f"wrote {rows:,} rows to {output}")

    @app.command()
    def search(
        run: Annotated[Path, typer.Option(help="run folder trained with --model content")],
        queries: Annotated[Path, typer.Option(help="TSV: query_id<TAB>query text per line")],
        output: Annotated[Path, typer.Option(help="CSV to write: query_id,item_id,rank,score")],
        by: Annotated[str, typer.Option(help="text, photo (photo vectors only) or hybrid")] = "hybrid",
        k: Annotated[int, typer.Option(min=1, max=1000)] = 10,
        user: Annotated[Optional[str], typer.Option(help="re-rank for this shopper")] = None,
        rerank_run: Annotated[Optional[Path], typer.Option(help="run whose model and events re-rank for --user "
                                                           "(default: --run)")] = None,
    ) -> None:
        """Search the catalogue for each query and export the top-k hits, in original ids."""
        rows, skipped = export_search(run, queries, k, output, by=by, user=user, rerank_run=rerank_run)
        typer.echo(f"wrote {rows:,} rows to {output}" + (f" ({skipped} queries skipped)" if skipped else ""))
