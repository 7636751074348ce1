"""Every error as JSON ``{"error": …, "detail": …}`` with the right status, the request body
limit (413) enforced while the body streams in, and the JSON response class that can encode
whatever it is given (a lone surrogate becomes U+FFFD rather than a 500)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relayflow.errors import AccessDenied, SpecError, StoreError
from relayflow.scrub import scrub
from relayflow.server.operations import Conflict, NotFound, Unauthorized
from relayflow.text import clean


class SafeJSON(JSONResponse):
    """The app's JSON responses: text that UTF-8 cannot carry (a lone surrogate from a model, a
    source or a store written before the API refused it) is replaced, never a failed answer."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return super().render(clean(content))


def _json(status: int, error: str, detail: Any = None, **headers: str) -> JSONResponse:
    # an error's text may quote a credential (a store URL's password, a key a provider echoed)
    body = {"error": scrub(error), "detail": scrub(detail) if isinstance(detail, str) else detail}
    return SafeJSON(body, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(Unauthorized)
    async def _unauthorized(_: Request, exc: Unauthorized) -> JSONResponse:
        return _json(401, str(exc), None, **{"WWW-Authenticate": "Bearer"})

    @app.exception_handler(AccessDenied)
    async def _denied(_: Request, exc: AccessDenied) -> JSONResponse:
        return _json(403, "access denied", str(exc))

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return _json(404, str(exc))

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return _json(409, str(exc))

    @app.exception_handler(SpecError)
    async def _spec(_: Request, exc: SpecError) -> JSONResponse:
        return _json(422, "invalid workflow", [str(p) for p in exc.problems])

    @app.exception_handler(StoreError)
    async def _store(_: Request, exc: StoreError) -> JSONResponse:
        return _json(503, "the store is unavailable", str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        bad_json = [e for e in errors if e.get("type") == "json_invalid"]
        if bad_json:
            reason = (bad_json[0].get("ctx") or {}).get("error", "")
            where = bad_json[0]["loc"][-1] if bad_json[0].get("loc") else "?"
            return _json(400, "malformed JSON", f"{reason} at character {where}".strip())
        # loc, msg and type only: pydantic's ``input`` and ``ctx`` would echo what was sent
        detail = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", ""), "type": e["type"]}
            for e in errors
        ]
        return _json(422, "invalid request", detail)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        return SafeJSON(
            {"error": str(exc.detail), "detail": None},
            status_code=exc.status_code,
            headers=headers,
        )


class BodyLimit:
    """Answer 413 for a body over ``max_bytes``: at once from Content-Length, else as soon as
    the streamed bytes pass it (the route's body read fails with the same 413)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > limit:
                    response = _too_large(limit) if declared > limit else _bad_length()
                    await response(scope, receive, send)
                    return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, f"request body over {limit} bytes")
            return message

        await self.app(scope, limited, send)


def _too_large(limit: int) -> JSONResponse:
    return _json(413, "request body too large", f"the server accepts at most {limit} bytes")


def _bad_length() -> JSONResponse:
    return _json(400, "invalid Content-Length header")
