"""The served run is kept out of the cyclic garbage collector's walks (engine/heap.py): frozen once loaded, handed
back to the collector when a swap lets it go (so a replaced run is freed, cycles included), the new one frozen a
little later, and everything handed back when the service stops."""

from __future__ import annotations

import gc
import time
import weakref

from fastapi.testclient import TestClient

from deepshelf.api.app import create_app
from deepshelf.engine import heap
from tests.api.conftest import auth, make_settings


def test_the_served_run_is_frozen_and_a_swapped_out_run_is_freed(run_link, runs_dir, tmp_path):
    app = create_app(make_settings(run_link, f"sqlite:///{tmp_path / 'store.db'}"))
    with TestClient(app, headers=auth()) as client:
        holder = app.state.service.runs
        assert gc.get_freeze_count() > 0
        # an object of the loaded run sits in the permanent generation: not in any collected generation
        collected = {id(o) for o in gc.get_objects()}
        assert id(holder.state.view.snapshot.index) not in collected
        old = weakref.ref(holder.state)
        cycle = [holder.state]  # a reference cycle through the old run: only a collection frees it
        cycle.append(cycle)
        del cycle
        r = client.post("/v1/admin/reload", json={"run": str(runs_dir / "pop")})
        assert r.status_code == 200, r.text
        assert gc.get_freeze_count() == 0 and holder.settle_due is not None  # handed back at the swap
        gc.collect()
        assert old() is None  # the replaced run is freed, cycle and all
        holder.settle_due = 0.0  # due now: the background tick settles the new run
        holder._watch()
        # the service's own background tick may have taken the due settle first: wait for whichever thread has it
        deadline = time.monotonic() + 10.0
        while gc.get_freeze_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert holder.settle_due is None and gc.get_freeze_count() > 0
        assert id(holder.state.view.snapshot.index) not in {id(o) for o in gc.get_objects()}
        assert client.get("/v1/users/u1_0/recommendations?k=3").status_code == 200
    assert gc.get_freeze_count() == 0  # stopped: nothing of it stays frozen


def test_settle_and_release():
    class Node:
        pass

    a = Node()
    a.self = a
    probe = weakref.ref(a)
    heap.settle()
    assert gc.get_freeze_count() > 0
    del a
    gc.collect()
    assert probe() is not None  # frozen: the collector does not see the cycle
    heap.release()
    gc.collect()
    assert probe() is None and gc.get_freeze_count() == 0
