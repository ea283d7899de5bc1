"""Error answers a shop's developer reads (issue 28, item 8): a 422 is one JSON object whose `detail` names the
field and the problem in a sentence (the shape of every other error answer), a JSON route sent something other than
JSON says which header to send, and mode=visual on a run with text vectors only says that."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import KEY, auth, make_settings, run_with_content


def test_a_422_is_one_object_naming_the_field(sqlite_client):
    r = sqlite_client.post("/v1/events", json={"events": [{"user_id": "u1", "item_id": "i1", "timestamp": "soon"}]})
    assert r.status_code == 422
    body = r.json()
    assert isinstance(body, dict) and isinstance(body["detail"], str), body
    assert body["field"] == "events[0].timestamp" and body["location"] == "body"
    assert body["detail"].startswith("body field events[0].timestamp: "), body["detail"]
    assert body["errors"][0]["loc"] == ["body", "events", 0, "timestamp"]  # the structured list stays, apart
    r = sqlite_client.get("/v1/popular", params={"k": 0})
    assert r.json()["detail"].startswith("query parameter k: ") and r.json()["field"] == "k"


def test_several_problems_say_how_many_more(sqlite_client):
    r = sqlite_client.post("/v1/events", json={"events": [{"user_id": "", "item_id": "", "type": "nope"}]})
    body = r.json()
    assert r.status_code == 422 and len(body["errors"]) == 3
    assert body["detail"].endswith("(and 2 more: see `errors`)"), body["detail"]


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain"])
def test_a_json_route_sent_another_content_type_says_which_header_to_send(sqlite_client, content_type):
    """`curl -d '{...}'` without -H sends application/x-www-form-urlencoded: the answer says what to send, not
    "Input should be a valid dictionary"."""
    payload = json.dumps({"item_ids": ["i1"], "k": 3})
    r = sqlite_client.post("/v1/sessions/recommendations", content=payload,
                           headers={"Content-Type": content_type, **auth()})
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert "Content-Type: application/json" in detail and content_type in detail, detail
    # no Content-Type at all: the same advice
    r = sqlite_client.post("/v1/sessions/recommendations", content=payload, headers=auth())
    assert r.status_code == 422 and "no Content-Type" in r.json()["detail"], r.text
    assert "Content-Type: application/json" in r.json()["detail"]


def test_a_bad_field_in_a_json_body_is_not_blamed_on_the_content_type(sqlite_client):
    r = sqlite_client.post("/v1/sessions/recommendations", json={"item_ids": ["i1"], "k": "three"})
    assert r.status_code == 422 and "Content-Type" not in r.json()["detail"] and r.json()["field"] == "k"


def test_openapi_documents_the_422_shape(sqlite_client):
    doc = sqlite_client.get("/openapi.json").json()
    ref = doc["paths"]["/v1/events"]["post"]["responses"]["422"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert schema["properties"]["detail"]["type"] == "string" and "errors" in schema["properties"]


@pytest.fixture
def text_only_run(runs_dir, tmp_path):
    """A run whose content indexes have text vectors and no photo vectors (a catalogue without images)."""
    return run_with_content(runs_dir, tmp_path / "knn-text-only", photos=False)


def test_visual_on_a_run_with_text_vectors_says_it_has_no_photo_vectors(text_only_run, tmp_path):
    from deepshelf.api.app import create_app

    with TestClient(create_app(make_settings(text_only_run, f"sqlite:///{tmp_path / 'v.db'}")),
                    headers={"X-API-Key": KEY}) as c:
        assert c.get("/v1/items/i4/similar", params={"mode": "text"}).status_code == 200
        r = c.get("/v1/items/i4/similar", params={"mode": "visual"})
    assert r.status_code == 409
    detail = r.json()["detail"]
    assert "text vectors but no photo vectors" in detail and "no content vectors" not in detail, detail


def test_a_body_that_is_not_utf8_gets_the_same_shape(sqlite_client):
    r = sqlite_client.post("/v1/events", content=b'{"events": [{"user_id": "\xff\xfe"}]}',
                           headers={"Content-Type": "application/json", **auth()})
    assert r.status_code == 422
    body = r.json()
    assert body["detail"] == "request body: the body is not JSON text in UTF-8" and body["location"] == "body"
    assert body["errors"][0]["type"] == "json_invalid"
