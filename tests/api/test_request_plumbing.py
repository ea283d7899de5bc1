"""The per-request plumbing of list answers: the query parsed from the parameters given (`deps.list_query`) and
the request metrics recorded per (method, route, status) (`metrics.Metrics.observe`)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from fastapi.exceptions import RequestValidationError
from starlette.requests import Request

from deepshelf.api.deps import list_query
from deepshelf.api.metrics import Metrics
from deepshelf.engine.settings import Settings


def _parse(query: str, settings: Settings | None = None):
    settings = settings or Settings()
    service = SimpleNamespace(state=None)  # no run loaded: categories are not checked against a catalogue
    app = SimpleNamespace(state=SimpleNamespace(settings=settings, service=service))
    request = Request({"type": "http", "method": "GET", "path": "/", "query_string": query.encode(),
                       "headers": [], "app": app})
    return asyncio.run(list_query(request)), service, settings


def test_list_query_reads_the_parameters_given():
    params, service, settings = _parse("k=3&k=7&category=a&category=b,,c&exclude=i1,i2&unknown=1&details=true"
                                       "&boost=toys:1.5&placement=cart&session_id=v1")
    assert params.k == 7  # a repeated scalar: its last value (starlette's QueryParams)
    assert params.details is True and params.placement == "cart" and params.session_id == "v1"
    assert params.rules.categories == ["a", "b", "c"] and params.rules.exclude == ["i1", "i2"]
    assert params.rules.boost_categories == {"toys": 1.5}
    assert params.service is service and params.settings is settings


def test_list_query_defaults_and_server_rules():
    params, _, _ = _parse("", Settings(default_in_stock=False, default_max_per_category=2))
    assert (params.k, params.details, params.placement, params.session_id) == (10, False, "home", None)
    assert params.rules.in_stock is False and params.rules.max_per_category == 2
    assert params.rules.categories is None and params.rules.exclude == []


def test_list_query_errors_name_each_parameter_in_field_order():
    with pytest.raises(RequestValidationError) as caught:
        _parse("details=maybe&k=0")
    assert [e["loc"] for e in caught.value.errors()] == [("query", "k"), ("query", "details")]
    with pytest.raises(RequestValidationError) as caught:
        _parse("k=101")  # above the server's max_k
    assert caught.value.errors()[0]["loc"] == ("query", "k")


def _sample(metrics: Metrics, name: str, **labels) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_metrics_count_each_status_and_share_the_route_window():
    metrics = Metrics(window=3)
    route = "/v1/users/{user_id}/recommendations"
    for status, seconds in ((200, 0.001), (200, 0.002), (404, 0.003), (200, 0.004)):
        metrics.observe("GET", route, status, seconds)
    metrics.observe("POST", "/v1/events", 200, 0.5)
    assert _sample(metrics, "deepshelf_http_requests_total", method="GET", route=route, status="200") == 3
    assert _sample(metrics, "deepshelf_http_requests_total", method="GET", route=route, status="404") == 1
    assert _sample(metrics, "deepshelf_http_requests_total", method="POST", route="/v1/events", status="200") == 1
    assert _sample(metrics, "deepshelf_http_request_duration_seconds_count", method="GET", route=route) == 4
    assert _sample(metrics, "deepshelf_http_request_duration_seconds_sum", method="GET",
                   route=route) == pytest.approx(0.010)
    rows = {(r["method"], r["route"]): r for r in metrics.percentiles()}
    assert rows[("GET", route)]["count"] == 4
    # the window holds the route's last 3 latencies whatever their status: 2, 3 and 4 ms
    assert rows[("GET", route)]["p50_ms"] == pytest.approx(3.0)
    assert rows[("POST", "/v1/events")]["p50_ms"] == pytest.approx(500.0)
