"""Keeping CPython's cyclic garbage collector off what a loaded run holds.

A loaded run is a few very large containers that live as long as it does (the id -> index dict of every catalogue
product, the caches of cards, histories and explanations, the imported libraries' objects). Each full collection of
the cyclic collector walks every one of them: a stop of the whole server process (0.1-0.8 s on 100,000 products,
timed with a `gc.callbacks` hook on a loaded 2-core machine), which shows in the p99 of benchmarks/serve_wrk.py's
open-loop rows.

`settle()` collects once, then moves everything alive to the collector's permanent generation (`gc.freeze`), so
later collections walk only what requests create. Nothing is kept alive by it for long: `release()` (a run swapped
out, the service stopped) hands every frozen object back to the collector, and each `settle()` begins with that
too; reference counting frees the rest as always. The holder settles when a run is loaded and again a little after
a swap (`SETTLE_AFTER_SWAP_S`, so the requests still holding the old run have let it go).
"""

from __future__ import annotations

import gc
import threading

SETTLE_AFTER_SWAP_S = 10.0

_lock = threading.Lock()


def settle() -> int:
    """Collect, then freeze what is alive; returns how many objects are frozen."""
    with _lock:
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        return gc.get_freeze_count()


def release() -> None:
    """Give every frozen object back to the collector."""
    with _lock:
        gc.unfreeze()
