"""What every route shares: the caller's token (a Bearer header or the ``relayflow_token``
cookie), the operations, and the error responses each route declares in the OpenAPI schema."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from relayflow.govern.access import Token
from relayflow.server.operations import Operations
from relayflow.server.schemas import ErrorBody

COOKIE = "relayflow_token"

_bearer = HTTPBearer(auto_error=False, description="An API token: `relayflow tokens create`.")
_cookie = APIKeyCookie(name=COOKIE, auto_error=False, description="The review pages' login.")


def operations(request: Request) -> Operations:
    svc: Operations = request.app.state.operations
    return svc


def caller(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    cookie: Annotated[str | None, Depends(_cookie)],
) -> Token:
    """The token of the request; 401 without a valid one."""
    secret = bearer.credentials if bearer is not None else cookie
    return operations(request).authenticate(secret)


def caller_secret(request: Request) -> str | None:
    """The secret a request carries, for a route outside the OpenAPI security scheme."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.cookies.get(COOKIE)


Svc = Annotated[Operations, Depends(operations)]
Caller = Annotated[Token, Depends(caller)]


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


#: the errors any authenticated route may answer
COMMON: dict[int | str, dict[str, Any]] = {
    400: _error("Malformed request (e.g. invalid JSON)."),
    401: _error("No token, or an unknown or revoked one."),
    403: _error("The token's role does not allow this; the denial is recorded."),
    413: _error("The request body is larger than the server accepts."),
    422: _error("The request does not match the schema (or the workflow is invalid)."),
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: _error("No such workflow, run or review.")}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: _error("Not possible in the current state (e.g. already decided).")
}
