"""Admin and dashboard data: model reload (hot swap), runs with their metrics and plots, event and latency stats."""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timezone
from pathlib import Path as FsPath
from typing import Annotated, Literal

from fastapi import APIRouter, Body, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from deepshelf.errors import DeepshelfError
from deepshelf.runs.decisions import read_decisions
from deepshelf.engine import stats
from deepshelf.engine.stats import EventStats
from deepshelf.api.deps import PrivateAuth, ServiceDep, SettingsDep, invalid
from deepshelf.api.schemas import (
    LatencyStats,
    ReloadIn,
    ReloadOut,
    RouteLatency,
    RunInfo,
    RunsOut,
    RunSummary,
)

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["admin"])

# A server path inside text (not a URL's): its folders are dropped, its last part kept ("/srv/runs/a/x.csv" -> "x.csv")
_SERVER_PATH = re.compile(r"(?<![\w.:/~-])/(?:[^\s/'\"`()<>\[\]]+/)+")


def without_paths(value):
    """`value` (text, or JSON-like data) with every absolute server path cut to its last part: what a run
    records (dataset files, its own folder) is shown by name, never where it lives on the server."""
    if isinstance(value, str):
        return _SERVER_PATH.sub("", value)
    if isinstance(value, dict):
        return {k: without_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_paths(v) for v in value]
    return value


@router.post("/admin/reload", response_model=ReloadOut, dependencies=[PrivateAuth],
             responses={409: {"description": "the new run was refused; the current one keeps serving"}})
async def reload(service: ServiceDep, body: Annotated[ReloadIn | None, Body()] = None) -> ReloadOut:
    """Load a run (default: the served path again, e.g. after its symlink moved) and swap it in atomically.
    Requests keep being answered by the current run while the new one loads; a broken run is refused (409)."""
    previous = service.state.version if service.state is not None else None
    try:
        state = await run_in_threadpool(service.reload, body.run if body and body.run else None)
    except DeepshelfError as exc:
        # the reason names server paths and exception text: the log has it, the client gets the run's name
        log.warning("reload refused: %s", exc)
        target = FsPath(body.run).name if body and body.run else "at the served path"
        raise HTTPException(409, f"run {target} refused (the server log says why); still serving "
                                 f"{previous or 'no model'}") from None
    return ReloadOut(model_version=state.version, previous_version=previous, changed=state.version != previous,
                     path=state.path.name if state.path else None, items=len(state.view))


def _plots(folder: FsPath, name: str) -> list[str]:
    plots = folder / "plots"
    return [f"/v1/runs/{name}/plots/{p.name}" for p in sorted(plots.glob("*.png"))] if plots.is_dir() else []


def _metrics(folder: FsPath) -> dict:
    try:
        return json.loads((folder / "metrics.json").read_text())
    except (OSError, ValueError):
        return {}


def _run_folders(service) -> list[FsPath]:
    """The served run's folder and its siblings that look like runs (have config.json)."""
    state = service.state
    if state is None or state.path is None:
        return []
    served = state.path
    parent = served.parent
    served_real = served.resolve()
    # a `current` link to a sibling run is listed as that run (its own name, as the demo and retrain print it)
    folders = [served_real if served_real.parent == parent.resolve() else served]
    try:
        for p in sorted(parent.iterdir()):
            # the served folder is often a link (`current`) to a sibling: list that run once, as served
            if (p.is_dir() and not p.name.startswith(".") and (p / "config.json").exists()
                    and p.resolve() != served_real):
                folders.append(p)
    except OSError:
        pass
    return folders[:200]


@router.get("/runs", response_model=RunsOut, dependencies=[PrivateAuth])
def runs(service: ServiceDep) -> RunsOut:
    """The served run (metrics, report, plots) and the other runs beside it."""
    state = service.state
    summaries = []
    served_real = FsPath(state.path).resolve() if state is not None and state.path else None
    for folder in _run_folders(service):
        m = _metrics(folder)
        serving = folder.resolve() == served_real
        m = without_paths(m)
        summaries.append(RunSummary(name=folder.name, path=folder.name, version=m.get("version"),
                                    model=m.get("model"), dataset=m.get("dataset"), serving=serving, metrics=m,
                                    plots=_plots(folder, folder.name)))
    if state is None or state.path is None:
        current = RunInfo(path=None, version=None, model=None, dataset=None, loaded_at=None, metrics={}, plots=[],
                          report=None)
    else:
        report = state.path / "report.md"
        current = RunInfo(path=state.path.name, version=state.version, model=getattr(state.model, "name", None),
                          dataset=without_paths(state.run.config.dataset),
                          loaded_at=datetime.fromtimestamp(state.loaded_at,
                                                                                            timezone.utc),
                          metrics=without_paths(state.run.metrics), plots=_plots(state.path, "current"),
                          report=without_paths(report.read_text()) if report.exists() else None,
                          sales_followed=state.sales.followed if state.sales is not None else None)
    return RunsOut(model_version=state.version if state else None,
                   serving=state.path.name if state is not None and state.path else None,
                   current=current, runs=summaries,
                   # its text names server paths and exceptions: the log has it, the dashboard a sentence
                   last_reload_error=None if service.last_reload_error is None else
                   "the last reload was refused (the server log says why); the current run keeps serving",
                   decisions=_decisions(service))


def _decisions(service, limit: int = 50) -> list[dict]:
    """The retraining decisions kept beside the served run: the folder holding the configured run path (a
    `current` link re-pointed by `deepshelf retrain`), without server paths."""
    run = service.settings.run
    if run is None:
        return []
    try:
        return without_paths(read_decisions(FsPath(run).parent, limit))
    except (OSError, DeepshelfError) as exc:
        log.warning("cannot read the retraining decisions beside %s: %s", run, exc)
        return []


@router.get("/runs/{name}/plots/{plot}", dependencies=[PrivateAuth], response_class=FileResponse,
            responses={200: {"content": {"image/png": {}}}, 404: {"description": "no such plot"}})
def run_plot(service: ServiceDep, name: Annotated[str, Path(max_length=256)],
             plot: Annotated[str, Path(max_length=256)]):
    """A report plot of the served run (`current`) or of a sibling run folder."""
    folders = {f.name: f for f in _run_folders(service)}
    state = service.state
    if name == "current" and state is not None and state.path is not None:
        folders["current"] = state.path
    folder = folders.get(name)
    # names are looked up, never joined blindly: no path traversal out of the runs folder
    if folder is None or "/" in plot or "\\" in plot or plot.startswith(".") or not plot.endswith(".png"):
        raise HTTPException(404, f"no plot {plot!r} for run {name!r}")
    path = folder / "plots" / plot
    if not path.is_file():
        raise HTTPException(404, f"no plot {plot!r} for run {name!r}")
    return FileResponse(path, media_type="image/png")


@router.get("/stats/events", response_model=EventStats, dependencies=[PrivateAuth])
def event_stats(service: ServiceDep, settings: SettingsDep, bucket: Literal["minute", "hour", "day"] = "hour",
                days: Annotated[float, Query(gt=0, le=3660, allow_inf_nan=False)] = 7.0) -> EventStats:
    """Events stored per time bucket (and per type) over the last `days`: at most `max_stats_buckets` buckets
    (default 10,080: a week of minutes); answers are cached for `stats_cache_s` seconds (default 10)."""
    if stats.buckets_needed(bucket, days) > settings.max_stats_buckets:
        longest = settings.max_stats_buckets * stats.BUCKETS[bucket] / 86400
        raise invalid("query", "days", f"at most {settings.max_stats_buckets} buckets: days must be at most "
                                       f"{longest:g} for bucket={bucket}", days)
    return stats.event_stats(service.store, bucket, days, settings.stats_cache_s)


@router.get("/stats/latency", response_model=LatencyStats, dependencies=[PrivateAuth])
def latency_stats(request: Request) -> LatencyStats:
    """p50 / p95 / p99 per route over this server's most recent requests."""
    metrics = request.app.state.metrics
    return LatencyStats(window=metrics.window, routes=[RouteLatency(**r) for r in metrics.percentiles()])
