"""The current visit (where it starts, how its answer is interleaved) and `because` on the API."""

from __future__ import annotations

import numpy as np

from deepshelf.engine.ranking import Candidates
from deepshelf.engine.visit import interleave, visit_start

from .conftest import auth, group_of


def test_visit_starts_after_the_last_long_gap_and_only_while_live():
    ts = np.array([0, 100, 5000, 5100, 5200])
    assert visit_start(ts, gap_s=1800, now=5300, max_events=10) == 2
    assert visit_start(ts, gap_s=1800, now=5300, max_events=2) == 3  # its last events only
    assert visit_start(ts, gap_s=1800, now=9000, max_events=10) == 5  # the newest event is old: no visit
    assert visit_start(ts[2:], gap_s=1800, now=5300, max_events=10) == 0  # the whole history is the visit
    assert visit_start(np.zeros(0), gap_s=1800, now=0, max_events=10) == 0


def test_interleave_by_hand():
    visit = Candidates.of([10, 11, 12], [9.0, 8.0, 7.0], "visit")
    whole = Candidates.of([20, 10, 21, 22], [4.0, 3.0, 2.0, 1.0], "whole")
    out = interleave(visit, whole, places=2)
    # visit first and every other place until two are placed; 10 is not repeated from the whole list
    assert out.idx.tolist() == [10, 20, 11, 21, 22]
    assert out.reasons == ["visit", "whole", "visit", "whole", "whole"]
    # a visit item takes the score of the whole-history item after it: still sorted
    assert out.scores.tolist() == [4.0, 4.0, 2.0, 2.0, 1.0]
    tail = interleave(Candidates.of([5, 6], [1.0, 1.0], "v"), Candidates.of([7], [3.0], "w"), places=2)
    assert tail.idx.tolist() == [5, 7, 6] and tail.scores.tolist() == [3.0, 3.0, 3.0]


def test_because_names_the_recent_item_each_recommendation_relates_to(client):
    """A shopper of group 1 (bought long ago) now views group-3 items: the new list holds group-3 items, each
    one `because` of a viewed group-3 item (with its catalogue title), and the schema documents the field."""
    old = [{"user_id": "returning", "item_id": f"i{25 + j}", "type": "purchase", "timestamp": "2020-01-01T00:00:00Z"}
           for j in range(6)]
    assert client.post("/v1/events", json={"events": old}, headers=auth()).status_code == 200
    quiet = client.get("/v1/users/returning/recommendations", params={"k": 6}).json()["items"]
    assert sum(group_of(i["item_id"]) == 1 for i in quiet) >= 4
    assert all(i.get("because") is None or group_of(i["because"]["item_id"]) == 1 for i in quiet)
    views = [{"user_id": "returning", "item_id": f"i{75 + j}", "type": "view"} for j in range(3)]
    assert client.post("/v1/events", json={"events": views}, headers=auth()).status_code == 200
    items = client.get("/v1/users/returning/recommendations", params={"k": 6}).json()["items"]
    visit = [i for i in items if group_of(i["item_id"]) == 3 and i["reason"] == "also_bought"]
    assert len(visit) >= 3  # the live visit's answer takes every other place
    viewed = {v["item_id"] for v in views}
    assert all(i["because"]["item_id"] in viewed and i["because"]["title"].startswith("Product ") for i in visit)
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert "because" in schema["RecommendedItem"]["properties"]
