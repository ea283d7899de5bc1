"""The storefront's hot read, `GET /v1/users/{user_id}/recommendations`, without FastAPI's per-request dependency
solving: a route placed ahead of the FastAPI one that takes the requests it can answer exactly as that route would
and leaves every other to it.

It takes a GET whose path id is a valid `Id` and whose `X-Shopper-Token` is within its length, and answers with the
same checks in the same order, through the same functions: the read key (`deps.check_read`, what
`deps.public_read` runs), the list query (`deps.list_query`: a malformed one raises the same 422), then the route's
own body (`recommendations.user_recommendations`: the shopper token, the answer). Anything else (an id or token the
FastAPI route would refuse with 422, another method) does not match here, so FastAPI answers it as before. The
FastAPI route stays registered, so the OpenAPI document is unchanged, and requests are counted under its path
(`scope["route"]`). What FastAPI's per-request work cost: docs/benchmarks.md, Service, where the time goes.
"""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.routing import Match, Route

from deepshelf.api.deps import check_read, list_query
from deepshelf.api.routes import recommendations
from deepshelf.data.fields import Id

PATH = "/v1/users/{user_id}/recommendations"
_ID = TypeAdapter(Id)


class UserListRoute(Route):
    def __init__(self, documented):
        super().__init__(PATH, self.endpoint, methods=["GET"], include_in_schema=False)
        self.documented = documented  # the FastAPI route: its path names the requests in the metrics

    def matches(self, scope):
        if scope["type"] != "http" or scope["method"] != "GET":
            return Match.NONE, {}
        match, child = super().matches(scope)
        if match != Match.FULL:
            return Match.NONE, {}
        try:
            user_id = _ID.validate_python(child["path_params"]["user_id"])
        except ValidationError:
            return Match.NONE, {}  # FastAPI's 422 naming the path parameter
        token = None
        for name, value in scope["headers"]:
            if name == b"x-shopper-token":
                token = value.decode("latin-1")
                break
        if token is not None and len(token) > recommendations.TOKEN_MAX_CHARS:
            return Match.NONE, {}
        child["path_params"] = {"user_id": user_id}
        child["route"] = self.documented
        child["deepshelf.shopper_token"] = token
        return Match.FULL, child

    @staticmethod
    async def endpoint(request: Request):
        check_read(request.app.state.settings, request.headers.get("x-api-key") or None)  # deps.public_read's check
        params = await list_query(request)
        return await recommendations.user_recommendations(request, request.path_params["user_id"], params,
                                                          request.scope["deepshelf.shopper_token"])


def install(app: FastAPI) -> None:
    """Put the thin route ahead of the app's routes (after the routers are included)."""
    documented = next(r for r in recommendations.router.routes if getattr(r, "path", None) == PATH)
    app.router.routes.insert(0, UserListRoute(documented))
