"""Recording what the service showed: every list answer becomes an `Impression` row, written by a background
thread in batches, so a request pays for one tuple appended to a queue and nothing else.

The writer stores what waits every `impression_flush_s` (or as soon as `impression_batch` lists wait), and once
more on shutdown. When the store is slow or down, lists keep waiting up to `impression_queue`; beyond it new ones are
dropped and counted (`deepshelf_impressions_dropped_total`), never waited for: a request is never held by the
analytics. The cost per list request is measured with and without recording in `benchmarks/serve_load.py
--impressions-cost` (docs/benchmarks.md, "Impressions").
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence

from prometheus_client import Counter

from deepshelf.content.feedback import normalise_query
from deepshelf.engine.periodic import OutageLog
from deepshelf.storage import Impression, Store, is_outage

log = logging.getLogger(__name__)


def new_recommendation_id() -> str:
    return uuid.uuid4().hex


def _joined(item_ids: Sequence[str]) -> str:
    """Item ids as an impression stores them: each between newlines ("\\ni1\\ni2\\n"; none: "\\n\\n")."""
    return "\n" + "\n".join(item_ids) + "\n"


class ImpressionWriter:
    """The queue of shown lists and the thread that stores them. `record` is safe from any thread."""

    def __init__(self, store: Store, flush_s: float, batch: int, capacity: int, metrics=None):
        self.store = store
        self.flush_s = flush_s
        self.batch = batch
        self.capacity = capacity
        # (recommendation_id, ts, user_id, session_id, placement, surface, model_version, experiment, variant,
        # item ids, new flags or None, a search's words or None): joined into the stored text and normalised by
        # the writer, off the request
        self._queue: deque[tuple] = deque()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._flush_lock = threading.Lock()  # one batch written at a time (the thread, flush() on erasure, stop)
        self._thread: threading.Thread | None = None
        self._outage = OutageLog("impressions writer (lists wait in memory, up to impression_queue)")
        # counted in the app's Metrics (api/metrics.py), else in counters of this writer's own
        self.recorded = metrics.impressions_recorded if metrics is not None else Counter(
            "deepshelf_impressions_recorded_total", "List answers stored as impressions", registry=None)
        self.dropped = metrics.impressions_dropped if metrics is not None else Counter(
            "deepshelf_impressions_dropped_total", "List answers dropped: the queue was full", registry=None)

    # ---- the request side -----------------------------------------------------------------------------------
    def record(self, recommendation_id: str, user_id: str | None, session_id: str | None, placement: str,
               surface: str, model_version: str | None, experiment: str | None, variant: str | None,
               item_ids: Sequence[str], new: Sequence[bool] | None = None, query: str | None = None) -> bool:
        """Queue one shown list; False (and counted) when the queue is full. `new` says per item whether it was a
        new product for the run that served it (`Answer.new`: ranking.is_new); None stores it as unknown. `query`:
        what a search answered (stored normalised: the search event that search learning reads)."""
        if len(self._queue) >= self.capacity:
            self.dropped.inc()
            return False
        self._queue.append((recommendation_id, time.time(), user_id, session_id, placement, surface, model_version,
                            experiment, variant, item_ids, new, query))
        if len(self._queue) >= self.batch:
            self._wake.set()
        return True

    @property
    def pending(self) -> int:
        return len(self._queue)

    # ---- the writer -------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="deepshelf-impressions", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.flush_s)
            self._wake.clear()
            try:
                self.flush()
            except Exception as exc:  # the store is down: the rows stay queued (up to capacity) for the next try
                if not is_outage(exc):
                    log.exception("impressions not stored yet (%d waiting)", len(self._queue))
                self._outage.failed(exc)
            else:
                self._outage.ok()

    def flush(self) -> int:
        """Store everything queued now, in batches; returns how many lists were stored. A batch that fails goes
        back to the front of the queue and the error is raised."""
        stored = 0
        with self._flush_lock:
            while self._queue:
                rows = []
                while self._queue and len(rows) < self.batch:
                    rows.append(self._queue.popleft())
                try:
                    self.store.add_impressions([Impression(*r[:9], _joined(r[9]), None if r[10] is None else
                                                           _joined([i for i, n in zip(r[9], r[10]) if n]),
                                                           normalise_query(r[11]) if r[11] else None)
                                                for r in rows])
                except BaseException:
                    self._queue.extendleft(reversed(rows))
                    raise
                stored += len(rows)
                self.recorded.inc(len(rows))
        return stored

    def stop(self) -> None:
        """Stop the thread and store what is still queued (shutdown)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, self.flush_s * 4))
        try:
            self.flush()
        except Exception as exc:
            log.error("shutdown: %d impressions could not be stored: %s", len(self._queue), exc)
