"""The HTTP layer over the serving engine: the FastAPI app factory, dependencies (auth, query parsing), one router
per resource, request/response schemas, the 422 answer, OpenAPI text and middleware (metrics, load shedding).

It parses, authorises and maps errors to status codes; every decision about what is served is the engine's
(`deepshelf.engine`).
"""
