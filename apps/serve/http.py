"""The HTTP conduct of the server, around every handler: JSON errors, CORS only when asked, response
headers, in-flight counting for the drain, and one access-log line per request with its latency."""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from sensorium.apps.serve.errors import ApiError, one_line

log = logging.getLogger("sensorium.serve")
access_log = logging.getLogger("sensorium.serve.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# The request key of how many instances a request carried (for the access log).
INSTANCES: Any = web.RequestKey("sensorium.instances", int) if hasattr(web, "RequestKey") else "sensorium.instances"
dumps = partial(json.dumps, ensure_ascii=False, separators=(",", ":"))


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=dumps)


def error_response(status: int, message: str) -> web.Response:
    """TF Serving's error shape: `{"error": MESSAGE}`."""
    return json_response({"error": one_line(message)}, status=status)


def _http_error_message(request: web.Request, exc: web.HTTPException) -> str:
    if exc.status == 404:
        return (f"no such endpoint: {request.method} {request.path[:200]} (the API is under /v1/models/NAME; "
                "the page is /)")
    if exc.status == 405:
        allowed = ", ".join(sorted(getattr(exc, "allowed_methods", ()) or ()))
        return f"{request.method} is not allowed on {request.path[:200]}" + (f" (use {allowed})" if allowed else "")
    if exc.status == 413:
        limit = request.app[STATE].limits.max_body_bytes
        return f"the request body is over the limit of {limit:,} bytes"
    return exc.reason or f"HTTP {exc.status}"


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure as `{"error"}` JSON with its status; an unexpected one is logged here, never sent."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, _http_error_message(request, exc))
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.path[:200])
        return error_response(500, "internal error (logged on the server)")


@web.middleware
async def conduct(request: web.Request, handler: Handler) -> web.StreamResponse:
    """In-flight counting (for the drain), 503 once draining, and the headers of every response."""
    state = request.app[STATE]
    state.in_flight += 1
    try:
        if state.draining and request.path != "/healthz":
            response: web.StreamResponse = error_response(503, "the server is shutting down")
        else:
            response = await handler(request)
    finally:
        state.in_flight -= 1
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def cors(origins: Sequence[str]) -> Callable[..., Any]:
    """CORS headers for the `--cors` origins only ("*": any origin); preflight requests answered here."""
    allowed = set(origins)

    def allow(origin: str | None) -> str | None:
        if origin is None:
            return None
        return "*" if "*" in allowed else origin if origin in allowed else None

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = allow(request.headers.get("Origin"))
        if request.method == "OPTIONS" and origin and "Access-Control-Request-Method" in request.headers:
            return web.Response(status=204, headers={
                "Access-Control-Allow-Origin": origin, "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                "Access-Control-Allow-Headers": "Content-Type", "Access-Control-Max-Age": "600", "Vary": "Origin"})
        response = await handler(request)
        if origin:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
        return response

    return middleware


class AccessLogger(AbstractAccessLogger):
    """One line per request: client, request line, status, bytes, latency, instances."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        instances = request.get(INSTANCES)
        self.logger.info('%s "%s %s" %d %dB %.1fms%s', request.remote, request.method, request.path_qs[:200],
                         response.status, response.body_length, time * 1000,
                         f" instances={instances}" if instances else "")

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


class ServerState:
    """What the handlers share: the models by name, the caps, and the drain flag."""

    def __init__(self, models: list[Any], limits: Any) -> None:
        self.models = {m.name: m for m in models}
        self.limits = limits
        self.draining = False
        self.in_flight = 0

    def first_of(self, task: str) -> Any | None:
        return next((m for m in self.models.values() if m.task == task), None)


STATE = web.AppKey("sensorium.state", ServerState)
