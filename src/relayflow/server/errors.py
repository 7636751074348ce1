"""Every error in the one JSON shape of relayflow/errors_http.py (``{"error", "type",
"detail", "problems"}``) with its class's status, the request body limit (413) enforced while
the body streams in, and the JSON response class that can encode whatever it is given (a lone
surrogate becomes U+FFFD rather than a 500)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relayflow.errors import RelayflowError
from relayflow.errors_http import INVALID_REQUEST, error_body, http_error, status_type
from relayflow.text import clean


class SafeJSON(JSONResponse):
    """The app's JSON responses: text that UTF-8 cannot carry (a lone surrogate from a model, a
    source or a store written before the API refused it) is replaced, never a failed answer."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return super().render(clean(content))


def _json(
    status: int,
    error: str,
    type_name: str,
    detail: Any = None,
    problems: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    return SafeJSON(error_body(error, type_name, detail, problems or ()), status_code=status)


def error_response(exc: BaseException) -> JSONResponse:
    """``exc`` as the app's answer: its class's status, the one shape, and its headers."""
    answer = http_error(exc)
    return SafeJSON(answer.body, status_code=answer.status, headers=dict(answer.headers))


def install(app: FastAPI) -> None:
    @app.exception_handler(RelayflowError)
    async def _relayflow(_: Request, exc: RelayflowError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        bad_json = [e for e in errors if e.get("type") == "json_invalid"]
        if bad_json:
            reason = (bad_json[0].get("ctx") or {}).get("error", "")
            where = bad_json[0]["loc"][-1] if bad_json[0].get("loc") else "?"
            return _json(
                400, "malformed JSON", "malformed_json", f"{reason} at character {where}".strip()
            )
        # loc, msg and type only: pydantic's ``input`` and ``ctx`` would echo what was sent
        detail = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", ""), "type": e["type"]}
            for e in errors
        ]
        problems = [
            {"field": ".".join(d["loc"]), "message": d["msg"], "type": d["type"]} for d in detail
        ]
        return _json(422, "invalid request", INVALID_REQUEST, detail, problems)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        return SafeJSON(
            error_body(str(exc.detail), status_type(exc.status_code)),
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
    return _json(
        413, "request body too large", status_type(413), f"the server accepts at most {limit} bytes"
    )


def _bad_length() -> JSONResponse:
    return _json(400, "invalid Content-Length header", status_type(400))
