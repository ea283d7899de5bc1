"""A store outage in background work (experiments refresh, live trending, the impressions writer) logs one line
per task, not a stack trace per try, and one line when the store answers again (issue 27, F13); a bug in a
background task still logs its traceback."""

from __future__ import annotations

import logging
import time

from fastapi.testclient import TestClient

from deepshelf.api.app import create_app
from deepshelf.engine.periodic import Periodic
from deepshelf.storage import StoreUnavailable
from tests.api.conftest import make_settings


def test_an_outage_in_background_work_is_one_line_per_task(run_link, tmp_path, caplog):
    settings = make_settings(run_link, f"sqlite:///{tmp_path / 's.db'}", trending_refresh_s=0.05,
                             experiment_refresh_s=0.05, impression_flush_s=0.05, watch_interval_s=60)
    with TestClient(create_app(settings)) as c:
        service = c.app.state.service
        store = service.store
        real_read, real_write = store._read, store._write

        def down(*args, **kwargs):
            raise StoreUnavailable("the database did not answer: canceling statement due to statement timeout")

        caplog.clear()
        caplog.set_level(logging.INFO, logger="deepshelf")
        store._read = store._write = down
        service.impressions.record("r-1", None, "s", "home", "popular", None, None, None, ["i1"])
        time.sleep(1.5)  # some 30 tries of each task
        store._read, store._write = real_read, real_write
        time.sleep(0.5)
    background = [r for r in caplog.records if r.threadName != "MainThread" and r.name.startswith("deepshelf")]
    assert not [r for r in background if r.exc_info], [r.getMessage() for r in background if r.exc_info]
    down_lines = [r.getMessage() for r in background if "store is unavailable" in r.getMessage()]
    again = [r.getMessage() for r in background if "answers again" in r.getMessage()]
    # experiments refresh, both trending refreshes, the impressions writer: one line each, then one each again
    assert 3 <= len(down_lines) <= 4 and len(again) == len(down_lines), down_lines + again
    assert any("impressions writer" in line for line in down_lines)


def test_a_bug_in_background_work_keeps_its_traceback(caplog):
    def broken():
        raise ValueError("a bug")

    task = Periodic("test-background", [(lambda: 0.01, broken)], tick_s=0.01)
    task.start()
    time.sleep(0.1)
    task.stop()
    assert any(r.exc_info and "broken failed" in r.getMessage() for r in caplog.records)
