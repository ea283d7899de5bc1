"""The 422 answer that names the field without ever echoing a value it cannot encode, and the per-request edge
checks (the clock skew `Timestamp` reads, an encoded `/` in an id path segment). The rules themselves are the
typed fields of `deepshelf.data.fields`.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from deepshelf.data.fields import clock_skew
from deepshelf.storage.cleaning import text_problem

_ECHO_LIMIT = 1000  # an input longer than this (as JSON) is not echoed back in a 422


# ---- the 422 answer -----------------------------------------------------------------------------------------
def _printable(value: Any) -> Any:
    """A string made encodable (lone surrogates escaped); other values as they are."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def _echoable(value: Any) -> bool:
    """Whether a value can be sent back as JSON as it is (finite numbers, valid UTF-8, short)."""
    try:
        text = json.dumps(jsonable_encoder(value), allow_nan=False, ensure_ascii=False)
        text.encode("utf-8")
    except (TypeError, ValueError, UnicodeError, RecursionError):
        return False
    return len(text) <= _ECHO_LIMIT


def _error(e: dict) -> dict:
    out = {"type": e.get("type", "value_error"), "loc": [_printable(p) for p in e.get("loc", ())],
           "msg": _printable(str(e.get("msg", "")))}
    if "input" in e and _echoable(e["input"]):
        out["input"] = jsonable_encoder(e["input"])
    ctx = e.get("ctx")
    if ctx:
        out["ctx"] = {k: (jsonable_encoder(v) if _echoable(v) and not isinstance(v, Exception) else
                          _printable(str(v))) for k, v in ctx.items()}
    return out


_PLACES = {"body": "body field", "query": "query parameter", "path": "path parameter", "header": "header"}
JSON_TYPES = ("application/json",)  # and any application/*+json


def field_name(loc: list) -> str:
    """`["body", "events", 0, "timestamp"]` -> `events[0].timestamp` (the location itself left out)."""
    out = ""
    for part in loc[1:] if loc and loc[0] in _PLACES else loc:
        out += f"[{part}]" if isinstance(part, int) else f"{'.' if out else ''}{part}"
    return out


def _sentence(error: dict) -> str:
    """One error in words: "query parameter k: k must be at most 20"; the whole body: "request body: …"."""
    loc, field = error["loc"], field_name(error["loc"])
    where = _PLACES.get(loc[0], "field") if loc else "field"
    return f"{where} {field}: {error['msg']}" if field else f"request body: {error['msg']}"


def _json_body_expected(request: Request, errors: list[dict]) -> str | None:
    """A JSON route's body refused as a whole because it was not sent as JSON (curl -d sends
    application/x-www-form-urlencoded): the message that says which header to send; None otherwise."""
    if not any(e["loc"][:1] == ["body"] for e in errors):
        return None
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    if media in JSON_TYPES or (media.startswith("application/") and media.endswith("+json")):
        return None
    got = f"Content-Type: {content_type}" if content_type else "no Content-Type"
    return (f"this route takes a JSON body: send it with the header `Content-Type: application/json` (the request "
            f"had {got}, so its body was not read as JSON)")


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """One JSON object, the project's error shape (`detail`: a sentence naming the field and the problem, as 400,
    404 and 409 answers have), with the first error's `field` and `location` and every error, FastAPI's way
    (`errors`: type, loc, msg, input), for code that needs them. A value that cannot be encoded (a lone surrogate,
    NaN, infinity) or is long is left out rather than echoed."""
    errors = [_error(e) for e in exc.errors()]
    if not errors:  # not expected from FastAPI; still one readable answer
        errors = [{"type": "value_error", "loc": ["body"], "msg": "invalid request"}]
    first = errors[0]
    detail = _json_body_expected(request, errors) or _sentence(first)
    if len(errors) > 1:
        detail += f" (and {len(errors) - 1} more: see `errors`)"
    return JSONResponse({"detail": detail, "field": field_name(first["loc"]) or None,
                         "location": first["loc"][0] if first["loc"] else None, "errors": errors}, status_code=422)


def edge_error(loc: list, msg: str, kind: str = "value_error") -> bytes:
    """validation_error's body for an error found outside FastAPI's validation (EdgeMiddleware, an undecodable
    body)."""
    error = {"type": kind, "loc": loc, "msg": msg}
    return json.dumps({"detail": _sentence(error), "field": field_name(loc), "location": loc[0],
                       "errors": [error]}).encode()


# ---- per request ---------------------------------------------------------------------------------------------
class EdgeMiddleware:
    """Pure ASGI: puts this app's clock skew where `Timestamp` reads it, and refuses an id path segment holding an
    encoded `/` (it would be decoded into two segments and reach another route, or none) with a 422 naming it."""

    def __init__(self, app, clock_skew_s: float, id_params: frozenset[str] = frozenset({"item_id", "user_id"})):
        self.app = app
        self.clock_skew_s = clock_skew_s
        self.id_params = id_params

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        raw = scope.get("raw_path") or b""
        if b"%2f" in raw.lower():
            param = self._id_param(scope, raw.split(b"?", 1)[0].decode("latin-1"))
            if param is not None:
                body = edge_error(["path", param], text_problem("/", "id"))
                await send({"type": "http.response.start", "status": 422,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        token = clock_skew.set(self.clock_skew_s)
        try:
            await self.app(scope, receive, send)
        finally:
            clock_skew.reset(token)

    def _id_param(self, scope, raw_path: str) -> str | None:
        """The id parameter whose path segment holds `%2F`, matched against the app's route templates."""
        segments = raw_path.split("/")
        app = scope.get("app")
        for path in app.openapi().get("paths", {}) if app is not None else ():  # the route templates
            template = path.split("/")
            if len(template) > len(segments):
                continue
            for n, (part, seg) in enumerate(zip(template, segments)):
                if part.startswith("{") and part.endswith("}"):
                    if "%2f" in seg.lower():
                        name = part[1:-1].split(":")[0]
                        return name if name in self.id_params else None
                elif part != seg:
                    break
        return None


def _key_patterns(node: Any) -> None:
    """pydantic writes a dict's key rule as `patternProperties`, which lets any other key through as an additional
    property; the rule is a rule on every key (`propertyNames`), which is what the server checks."""
    if isinstance(node, dict):
        patterns = node.get("patternProperties")
        if isinstance(patterns, dict) and len(patterns) == 1 and "additionalProperties" not in node:
            (pattern, values), = patterns.items()
            del node["patternProperties"]
            node["propertyNames"] = {**node.get("propertyNames", {}), "pattern": pattern}
            node["additionalProperties"] = values
        for value in node.values():
            _key_patterns(value)
    elif isinstance(node, list):
        for value in node:
            _key_patterns(value)


def install(app: FastAPI, settings) -> None:
    """Register the 422 answer and the per-request edge checks on `app`, and state this server's `max_k` in its
    OpenAPI document (the static schema allows more than a server may be configured to answer)."""
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_middleware(EdgeMiddleware, clock_skew_s=settings.max_clock_skew_s)
    inner = app.openapi

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        doc = inner()
        _key_patterns(doc)
        for operation in (op for path in doc.get("paths", {}).values() for op in path.values()):
            for param in operation.get("parameters", []) if isinstance(operation, dict) else []:
                if param.get("name") == "k" and param.get("in") == "query":
                    param["schema"]["maximum"] = settings.max_k
        session_k = doc.get("components", {}).get("schemas", {}).get("SessionIn", {}).get("properties", {}).get("k")
        for option in (session_k or {}).get("anyOf", []):
            if option.get("type") == "integer":
                option["maximum"] = settings.max_k
        return doc

    app.openapi = openapi
