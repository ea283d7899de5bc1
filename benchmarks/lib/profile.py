"""Where a server process's time goes: a sampling profile (py-spy, the samples of whichever thread holds the GIL:
the Python time a worker has, one core's worth at most) of one worker under load, each sample put in the first
bucket whose frames it holds. (Without `--gil`, py-spy here counts threads waiting on a lock as busy.)

py-spy is a separate tool (`pip install py-spy`); without it the profile is skipped and says so.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

# (bucket, pattern over the sample's frames): the first that matches takes the sample
BUCKETS = [
    ("socket write of the answer (uvicorn)", re.compile(r"RequestResponseCycle\.send \(")),
    ("background threads (trending, impressions writer, polls)",
     re.compile(r"Periodic\._run|ImpressionWriter\._run|ContentFeatures")),
    ("store reads", re.compile(r"deepshelf/storage/")),
    ("fold-in and ANN search", re.compile(r"query_vectors|VectorIndex\.search|user_factors")),
    ("explanations (`because`)", re.compile(r"deepshelf/engine/explain\.py")),
    ("ranking (candidates, rules, visit stage, new products)", re.compile(r"deepshelf/engine/(ranking|rules|visit)\.py")),
    ("product cards and the JSON answer", re.compile(r"to_list|deepshelf/engine/cards\.py|json")),
    ("the rest of the engine (run, catalogue, shopper history)", re.compile(r"deepshelf/engine/")),
    ("request parsing, key and token checks (FastAPI dependencies, or the same checks on the thin route)",
     re.compile(r"solve_dependencies|deepshelf/api/deps\.py|UserListRoute\.matches|_ID\.validate")),
    ("thread-pool hop (handing work to a thread and back)",
     re.compile(r"run_in_threadpool|run_sync_in_worker_thread|WorkerThread|to_thread|Thread\._bootstrap")),
    ("ASGI stack (uvicorn, middleware, routing, the route's own code)", re.compile(r"httptools_impl|run_asgi")),
]


def _py_spy() -> str | None:
    """py-spy on PATH, else beside this Python (a virtual environment's bin/, not on PATH when it is not active)."""
    found = shutil.which("py-spy")
    if found is None:
        beside = Path(sys.executable).with_name("py-spy")
        found = str(beside) if beside.exists() else None
    return found


def available() -> bool:
    return _py_spy() is not None


def record(pid: int, seconds: float, out: Path, rate: int = 200) -> Path:
    """Sample process `pid` for `seconds` (raw collapsed stacks in `out`)."""
    subprocess.run([_py_spy(), "record", "-p", str(pid), "-d", str(int(seconds)), "-r", str(rate), "-f", "raw",
                    "-o", str(out), "--gil", "--nonblocking"], check=True, capture_output=True,
                   timeout=seconds + 60)
    return out


def breakdown(raw: Path) -> tuple[int, list[tuple[str, float]]]:
    """(samples, [(bucket, share of samples)]) from py-spy's raw output, largest first ("other" last)."""
    counts: Counter = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        total += int(n)
        bucket = next((name for name, pattern in BUCKETS if pattern.search(stack)), "other")
        counts[bucket] += int(n)
    shares = sorted(((b, c / total) for b, c in counts.items() if b != "other"), key=lambda x: -x[1])
    if counts["other"]:
        shares.append(("other (the event loop itself, idle)", counts["other"] / total))
    return total, shares
