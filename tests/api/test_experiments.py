"""Online experiments (issue 17): assignment is a stable hash, the statistics against hand-computed values, A/A
declares no winner in >= 95% of repeated runs, Thompson allocation moves traffic, the API with two runs, and two
servers on one store agree."""

from __future__ import annotations

import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from deepshelf.api.app import create_app
from deepshelf.engine.experiments import ExperimentRegistry, choose, position
from deepshelf.engine.verdict import traffic_shares, two_proportion_p, verdict, wilson
from deepshelf.storage import open_store
from tests.api.conftest import auth, make_settings


# ---- assignment ---------------------------------------------------------------------------------------------------
def test_assignment_is_a_pure_stable_hash():
    # SHA-256("exp\0u1") begins 0ba666f256b55a0e: 0x0ba666f256b55a0e / 2**64 (not Python's per-process hash())
    assert position("u1", "exp") == pytest.approx(0x0BA666F256B55A0E / 2.0**64)
    assert choose(0.0455, [0.5, 0.5]) == 0 and choose(0.5, [0.5, 0.5]) == 1 and choose(0.9999, [0.3, 0.7]) == 1
    ids = [f"shopper-{i}" for i in range(20_000)]
    first = np.array([choose(position(u, "exp"), [0.3, 0.7]) for u in ids])
    assert (first == np.array([choose(position(u, "exp"), [0.3, 0.7]) for u in ids])).all()
    share = first.mean()
    assert abs(share - 0.7) < 5 * np.sqrt(0.21 / len(ids))  # the configured share, within 5 sigma
    # another experiment's assignment is independent of this one's
    other = np.array([choose(position(u, "exp2"), [0.5, 0.5]) for u in ids])
    assert abs((other == (first > 0)).mean() - 0.5) < 5 * np.sqrt(0.25 / len(ids))


# ---- statistics -----------------------------------------------------------------------------------------------------
def test_statistics_against_hand_computed_values():
    # pooled p = 170/2000 = 0.085, se = sqrt(0.085 * 0.915 * 2/1000) = 0.012472, z = 0.03 / se = 2.4054
    assert two_proportion_p(100, 1000, 70, 1000) == pytest.approx(0.016155, abs=1e-5)
    assert two_proportion_p(0, 0, 5, 10) == 1.0 and two_proportion_p(0, 10, 0, 10) == 1.0
    # Wilson, 10 of 100: centre (0.1 + 1.96²/200) / (1 + 1.96²/100) = 0.114799, half-width 0.059566
    low, high = wilson(10, 100)
    assert low == pytest.approx(0.055229, abs=1e-5) and high == pytest.approx(0.174366, abs=1e-5)
    assert wilson(0, 0) == (0.0, 1.0)
    v = verdict("fixed", ["a", "b"], [1000, 1000], [70, 100], alpha=0.05, min_impressions=100)
    assert v["winner"] == "b" and v["p_value"] == pytest.approx(0.016155, abs=1e-5)
    assert verdict("fixed", ["a", "b"], [1000, 1000], [70, 100], alpha=0.01, min_impressions=100)["winner"] is None
    assert verdict("fixed", ["a", "b"], [50, 50], [0, 40], alpha=0.05, min_impressions=100)["winner"] is None
    # three variants: the best against each other one, Bonferroni-corrected
    v3 = verdict("fixed", ["a", "b", "c"], [1000] * 3, [70, 100, 70], alpha=0.05, min_impressions=1)
    assert v3["p_value"] == pytest.approx(2 * 0.016155, abs=1e-4) and v3["winner"] == "b"
    t = verdict("thompson", ["a", "b"], [2000, 2000], [100, 200], alpha=0.01, min_impressions=100)
    assert t["winner"] == "b" and t["probability_best"]["b"] > 0.99
    # Thompson starves the worse variant: its posterior, not a per-variant minimum, decides
    assert verdict("thompson", ["a", "b"], [40, 2000], [1, 400], alpha=0.01, min_impressions=100)["winner"] == "b"
    assert verdict("thompson", ["a", "b"], [40, 40], [1, 20], alpha=0.01, min_impressions=100)["winner"] is None


@pytest.mark.parametrize("allocation", ["fixed", "thompson"])
def test_a_a_declares_no_winner_in_95_percent_of_runs_and_a_b_finds_the_better(allocation):
    rng = np.random.default_rng(7)
    runs, n = 300, 3000

    def winners(p_a: float, p_b: float) -> list:
        out = []
        for _ in range(runs):
            clicks = [rng.binomial(n, p_a), rng.binomial(n, p_b)]
            out.append(verdict(allocation, ["a", "b"], [n, n], clicks, alpha=0.01, min_impressions=100)["winner"])
        return out

    assert np.mean([w is None for w in winners(0.05, 0.05)]) >= 0.95
    assert np.mean([w == "b" for w in winners(0.05, 0.08)]) >= 0.9  # and it has the power to find a real one


def test_thompson_shares_move_towards_the_better_variant():
    assert list(traffic_shares("thompson", [0.5, 0.5], [0, 0], [0, 0])) == [0.5, 0.5]  # no evidence yet
    even = traffic_shares("thompson", [0.5, 0.5], [1000, 1000], [50, 50])
    assert abs(even[1] - 0.5) < 0.05
    clear = traffic_shares("thompson", [0.5, 0.5], [1000, 1000], [50, 90])
    assert clear[1] > 0.99 and list(traffic_shares("fixed", [1, 3], [1000, 1000], [50, 90])) == [0.25, 0.75]


def test_thompson_allocation_moves_traffic_as_counts_grow(runs_dir, tmp_path):
    """The registry re-reads the counts at each refresh: shoppers move to the variant that is doing better."""
    settings = make_settings(runs_dir / "knn", f"sqlite:///{tmp_path / 'x.db'}")
    store = open_store(settings.database)
    counts = {"a": (0, 0), "b": (0, 0)}
    store.variant_summary = lambda name: [{"variant": v, "impressions": n, "clicks": c, "conversions": 0,
                                           "revenue": 0.0} for v, (n, c) in counts.items()]
    registry = ExperimentRegistry(settings, store)
    try:
        registry.define("t", "home", "thompson", [{"name": "a", "run": str(runs_dir / "pop"), "share": 0.5},
                                                  {"name": "b", "run": str(runs_dir / "als"), "share": 0.5}])
        shoppers = [f"s{i}" for i in range(2000)]

        def share_b() -> float:
            return np.mean([registry.pick("home", u).variant == "b" for u in shoppers])

        shares = [share_b()]
        for n in (200, 1000, 3000):
            counts.update(a=(n, int(0.05 * n)), b=(n, int(0.08 * n)))
            registry.refresh()
            shares.append(share_b())
        assert abs(shares[0] - 0.5) < 0.05 and shares[-1] > 0.95
        assert shares == sorted(shares)
        assert registry.pick("home", "s1").state.version.startswith(("pop-", "als-"))
        assert registry.pick("home", None) is None and registry.pick("cart", "s1") is None
    finally:
        registry.stop()
        store.close()


# ---- the API ----------------------------------------------------------------------------------------------------
def body(runs_dir, a="als", b="pop", placement="home", allocation="fixed", shares=(0.5, 0.5)) -> dict:
    return {"placement": placement, "allocation": allocation,
            "variants": [{"name": "a", "run": str(runs_dir / a), "share": shares[0]},
                         {"name": "b", "run": str(runs_dir / b), "share": shares[1]}]}


def served_version(c: TestClient, user: str, **params) -> str:
    r = c.get(f"/v1/users/{user}/recommendations", params={"k": 3, **params})
    assert r.status_code == 200, r.text
    return r.json()["model_version"]


def expected_variant(user: str, name: str = "ab") -> str:
    return "ab"[choose(position(user, name), [0.5, 0.5])]


def test_experiment_api_with_two_runs(run_link, runs_dir, database, tmp_path):
    app = create_app(make_settings(run_link, database, max_variant_runs=2))
    with TestClient(app, headers=auth()) as c:
        main = c.get("/health").json()["model_version"]
        r = c.put("/v1/experiments/ab", json=body(runs_dir))
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["active"] and out["served_here"] and [v["run"] for v in out["variants"]] == ["als", "pop"]
        version = {v["name"]: v["model_version"] for v in out["variants"]}
        assert version["a"].startswith("als-") and version["b"].startswith("pop-")
        users = [f"u0_{i}" for i in range(30)]
        for u in users:  # each shopper gets its variant's run, the same one every time
            assert served_version(c, u) == version[expected_variant(u)] == served_version(c, u)
        assert {expected_variant(u) for u in users} == {"a", "b"}
        assert served_version(c, users[0], placement="product_page") == main  # another placement: the served run
        # anonymous requests are assigned by their session id; without one they stay outside the experiment
        s = [c.get("/v1/popular", params={"session_id": f"visit-{i}"}).json()["model_version"] for i in range(20)]
        assert set(s) == {version["a"], version["b"]}
        assert c.post("/v1/sessions/recommendations", json={"item_ids": ["i1"]}).json()["model_version"] == main
        got = c.get("/v1/experiments/ab").json()
        assert {"impressions", "clicks", "ctr", "ctr_low", "ctr_high", "conversions", "revenue"} <= set(
            got["variants"][0]) and got["verdict"]["winner"] is None and "z-test" in got["verdict"]["method"]

        # refused definitions: each names the field and never echoes a server path
        secret = tmp_path / "not-a-run"
        secret.mkdir()
        for bad_run in (str(secret), str(tmp_path / "missing")):
            r = c.put("/v1/experiments/ab2", json=body(runs_dir, placement="cart") | {
                "variants": [{"name": "a", "run": str(runs_dir / "als"), "share": 0.5},
                             {"name": "b", "run": bad_run, "share": 0.5}]})
            assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "variants", 1, "run"]
            assert str(tmp_path) not in r.text and "not-a-run" not in r.text
        r = c.put("/v1/experiments/ab2", json=body(runs_dir, shares=(0.5, 0.6)))
        assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "variants"]
        assert c.put("/v1/experiments/other", json=body(runs_dir)).status_code == 409  # placement taken
        r = c.put("/v1/experiments/big", json=body(runs_dir, a="knn", placement="cart"))
        assert r.status_code == 409 and "max_variant_runs" in r.text  # a third run beyond the bound of 2
        assert c.get("/v1/experiments/nope").status_code == 404

        stopped = c.delete("/v1/experiments/ab").json()
        assert not stopped["active"] and all(served_version(c, u) == main for u in users)
        assert c.get("/v1/experiments/ab").json()["active"] is False
        assert c.put("/v1/experiments/other", json=body(runs_dir)).status_code == 200  # the placement is free


def test_two_servers_on_one_store_agree(run_link, runs_dir, database):
    settings = dict(experiment_refresh_s=0.1)
    with TestClient(create_app(make_settings(run_link, database, **settings)), headers=auth()) as one, \
            TestClient(create_app(make_settings(run_link, database, **settings)), headers=auth()) as two:
        main = one.get("/health").json()["model_version"]
        assert one.put("/v1/experiments/ab", json=body(runs_dir)).status_code == 200
        users = [f"u1_{i}" for i in range(20)]

        def wait_until(condition) -> None:  # the other server follows within its refresh interval
            deadline = time.monotonic() + 30
            while not condition() and time.monotonic() < deadline:
                time.sleep(0.1)

        wait_until(lambda: two.get("/v1/experiments/ab").json()["served_here"])
        assert [served_version(one, u) for u in users] == [served_version(two, u) for u in users]
        assert len({served_version(two, u) for u in users}) == 2
        # counts come from the store, where each server's impression writer flushes in the background: once the
        # writes have landed and both have refreshed, both servers report the same numbers
        variants = lambda c: c.get("/v1/experiments/ab").json()["variants"]  # noqa: E731
        served = 3 * len(users)  # the three rounds of lists above, each one impression: all of them, not some
        wait_until(lambda: variants(one) == variants(two) and sum(v["impressions"] for v in variants(one)) >= served)
        assert variants(one) == variants(two)
        assert sum(v["impressions"] for v in variants(one)) >= 40  # every list above was counted
        assert two.delete("/v1/experiments/ab").status_code == 200
        wait_until(lambda: all(served_version(one, u) == main for u in users))
        assert all(served_version(one, u) == main for u in users)


def test_experiments_need_a_private_key(run_link, runs_dir, tmp_path):
    from tests.api.conftest import PUBLIC_KEY

    with TestClient(create_app(make_settings(run_link, f"sqlite:///{tmp_path / 'k.db'}"))) as c:
        for method, json in (("PUT", body(runs_dir)), ("GET", None), ("DELETE", None)):
            assert c.request(method, "/v1/experiments/ab", json=json).status_code == 401
            r = c.request(method, "/v1/experiments/ab", json=json, headers={"X-API-Key": PUBLIC_KEY})
            assert r.status_code == 403
        assert c.get("/v1/experiments/ab", headers=auth()).status_code == 404
