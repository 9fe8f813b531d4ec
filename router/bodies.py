"""JSON in and out of a route: a request body read within its size limit and parsed, a JSON answer,
and a route served to a tenant (its own data) and to the admin (any tenant's)."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

import orjson
from fastapi import Request
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from router.errors import APIError, invalid_request
from router.inputs import check_depth


_JSON = "application/json"


async def read_json(request: Request, limit: int) -> Any:
    """The request body parsed as JSON, at most ``limit`` bytes. How long the body may take to
    arrive is bounded in the pipeline (``server.body_timeout``, router/http.py), not by a timer here."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise APIError(413, f"Request body too large: {length} bytes (the limit is {limit}).", code="request_too_large")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise APIError(413, f"Request body too large (the limit is {limit} bytes).", code="request_too_large")
            chunks.append(chunk)
    except ClientDisconnect:
        raise APIError(
            499, "The client went away before its request body arrived.", code="client_disconnected"
        ) from None
    raw = b"".join(chunks)
    if not raw.strip():
        raise invalid_request("The request body is empty; send a JSON object.", code="invalid_body")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise invalid_request(
            "We could not parse the JSON body of your request: it is not valid JSON (or not UTF-8).",
            code="invalid_json",
        ) from None
    check_depth(body, raw)
    return body


def json_response(doc: Any, status: int = 200) -> Response:
    """A JSON answer (every route's success shape; errors are ``APIError.response()``)."""
    return Response(orjson.dumps(doc), status_code=status, media_type=_JSON)


def tenant_scoped(
    view: Callable[[Request, str | None], Awaitable[Response]],
    principal: Callable[[Request], Any],
    admin: Callable[[Request], None],
    *,
    as_admin: bool,
) -> Callable[[Request], Awaitable[Response]]:
    """A route for ``view(request, tenant)``: a tenant key sees its own tenant; the admin key (as_admin)
    every tenant (None). The usage API and the dashboard's insights each answer both ways."""

    async def route(request: Request) -> Response:
        if as_admin:
            admin(request)
            return await view(request, None)
        return await view(request, principal(request).tenant)

    return route
