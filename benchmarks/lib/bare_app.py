"""The bare stack that `serve_load.py` compares deepshelf's user recommendations against: FastAPI + uvicorn with
one route, `GET /v1/users/{user_id}/recommendations?k=&details=`, answering k items of the same JSON shape as
deepshelf's (item_id, score, reason, title, category, price, image; recommendation_id, model_version, source)
from a list held in memory. No store, no model, no key check, no middleware: the floor any FastAPI service pays
per request (routing, query parsing, JSON encoding, and for the plain `def` route a thread-pool hop). The same answer
from an `async def` route is under `/async/v1/users/{user_id}/recommendations` (no thread-pool hop).

    .venv/bin/python -m benchmarks.lib.bare_app --port 8100 --workers 1

Served with the uvicorn settings of `deepshelf serve` (same keep-alive and header timeout, log level and access log
off).
"""

from __future__ import annotations

import argparse
import json
import uuid
from typing import Annotated

from fastapi import FastAPI, Query, Response

from benchmarks.lib import ROOT

CATALOGUE = [{"item_id": f"p{i}", "title": f"lamp chair {i}", "category": f"c{i % 200}", "price": float(5 + i % 500),
              "image": f"https://shop.example/img/p{i}.jpg"} for i in range(1000)]

app = FastAPI()


@app.get("/v1/users/{user_id}/recommendations")
def user_recommendations(user_id: str, k: Annotated[int, Query(ge=1, le=100)] = 10,
                         details: bool = False) -> Response:
    return _answer(user_id, k, details)


@app.get("/async/v1/users/{user_id}/recommendations")
async def user_recommendations_async(user_id: str, k: Annotated[int, Query(ge=1, le=100)] = 10,
                                     details: bool = False) -> Response:
    """The same answer from an `async def` route: no thread-pool hop (deepshelf's hot routes are `async def`)."""
    return _answer(user_id, k, details)


def _answer(user_id: str, k: int, details: bool) -> Response:
    start = hash(user_id) % (len(CATALOGUE) - 100)
    items = []
    for rank, row in enumerate(CATALOGUE[start:start + k]):
        item = {"item_id": row["item_id"], "score": 1.0 / (rank + 1), "reason": "model"}
        if details:
            item.update(title=row["title"], category=row["category"], price=row["price"], image=row["image"])
        items.append(item)
    body = {"items": items, "recommendation_id": uuid.uuid4().hex, "model_version": "bare", "source": "model"}
    return Response(json.dumps(body, separators=(",", ":")), media_type="application/json")


@app.get("/health")
def health() -> dict:
    return {"status": "ok"}


def main() -> None:
    import uvicorn

    from deepshelf.api.idle import HeaderTimeout
    from deepshelf.cli.serve import KEEP_ALIVE_S

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=8100)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    if args.workers == 1:
        uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False,
                    timeout_keep_alive=KEEP_ALIVE_S, http=HeaderTimeout)
    else:
        uvicorn.run("benchmarks.lib.bare_app:app", app_dir=str(ROOT), workers=args.workers,
                    host="127.0.0.1", port=args.port, log_level="warning", access_log=False,
                    timeout_keep_alive=KEEP_ALIVE_S, http=HeaderTimeout)


if __name__ == "__main__":
    main()
