"""Data-parallel scale-out: `deepshelf train ... --nproc N` re-runs itself under torchrun; each process joins a
process group (gloo on CPU, NCCL on GPU), trains on its shard of every batch, and rank 0 alone evaluates and
writes the run.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)


def _strip_nproc(argv: list[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def launch(nproc: int, argv: list[str]) -> int:
    """Run `deepshelf <argv>` (without --nproc) in `nproc` processes under torchrun; returns the exit code."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           "-m", "deepshelf", *_strip_nproc(argv)]
    env = dict(os.environ)
    # torchrun would pin each worker to one thread; on CPU share the cores between the workers instead
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    log.info("launching %s", " ".join(cmd))
    return subprocess.call(cmd, env=env)


def world() -> tuple[int, int]:
    """(rank, world size) from the torchrun environment; (0, 1) when not distributed."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def is_main_process() -> bool:
    return world()[0] == 0


def setup(device_type: str) -> tuple[int, int]:
    """Join the process group when launched by torchrun (idempotent); returns (rank, world size)."""
    rank, size = world()
    if size > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return rank, size


def wait_for_main(out: Path, since: float, timeout: float = 3600.0) -> None:
    """On a non-zero rank: block until rank 0 has written the run at `out` (torchrun kills us if rank 0 dies)."""
    deadline = time.time() + timeout
    marker = Path(out) / "metrics.json"
    while time.time() < deadline:
        if marker.exists() and marker.stat().st_mtime >= since:
            return
        time.sleep(0.5)
    raise TimeoutError(f"rank 0 did not write {marker} within {timeout:.0f}s")
