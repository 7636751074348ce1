"""The review pages: log in with a token, work the review queue (approve or correct, by
keyboard), follow runs. Server-rendered with Jinja2 over the same Operations (and the same
redaction) as the JSON API; no CDN, no build step, no inline script (a strict CSP)."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import parse_qsl, urlencode

import jinja2
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute

from relayflow.core.money import money
from relayflow.errors import AccessDenied, Conflict, NotFound, StoreError, Unauthenticated
from relayflow.govern.access import Token
from relayflow.scrub import scrub
from relayflow.server.deps import COOKIE
from relayflow.server.operations import Operations
from relayflow.server.redact import MASK
from relayflow.server.schemas import ReviewView, RunView
from relayflow.text import surrogate_message, surrogate_path

#: the double-submit CSRF cookie; every form carries the same value in a hidden field
CSRF_COOKIE = "relayflow_csrf"
RUN_STATUSES = ("queued", "running", "waiting_review", "succeeded", "failed", "cancelled")
REVIEW_STATUSES = ("pending", "approved", "corrected", "cancelled")
MAX_FORM = 256 * 1024
#: pending items an item's page looks through for the previous, next and following item
QUEUE = 200
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("relayflow.server", "web/templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(pretty=_pretty, ago=_ago, when=_when, seconds=_seconds, money=money)
    return env


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min"


def _ago(ts: float | None) -> str:
    if ts is None:
        return "—"
    age = max(0.0, time.time() - ts)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if age >= size:
            return f"{age / size:.0f} {unit}"
    return f"{age:.0f} s"


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "—"


TEMPLATES = _env()


class PageRoute(APIRoute):
    """Errors as pages: no login → the login page; a denial, a missing item or a conflict →
    an HTML page with the status (the JSON API keeps its JSON errors)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except Unauthenticated:
                target = "/reviews"  # a form's target is no page to come back to
                if request.method == "GET":
                    query = request.url.query
                    target = request.url.path + (f"?{query}" if query else "")
                return RedirectResponse(f"/login?{urlencode({'next': target})}", 303)
            except AccessDenied as exc:
                return _error(request, 403, "Access denied", str(exc))
            except NotFound as exc:
                return _error(request, 404, "Not found", str(exc))
            except Conflict as exc:
                return _error(request, 409, "Not possible now", str(exc))
            except StoreError as exc:
                return _error(request, 503, "The store is unavailable", str(exc))

        return route


router = APIRouter(include_in_schema=False, route_class=PageRoute)


# ---- helpers ------------------------------------------------------------------------------------


def _service(request: Request) -> Operations:
    svc: Operations = request.app.state.operations
    return svc


def _token(request: Request) -> Token:
    """The logged-in token (the cookie); Unauthenticated sends the browser to the login page."""
    return _service(request).authenticate(request.cookies.get(COOKIE))


def _csrf(request: Request) -> str:
    value = request.cookies.get(CSRF_COOKIE)
    if value and len(value) >= 32:
        return value
    fresh: str | None = getattr(request.state, "csrf", None)
    if fresh is None:
        fresh = request.state.csrf = secrets.token_urlsafe(32)
    return fresh


def _render(
    request: Request,
    name: str,
    http_status: int = 200,
    token: Token | None = None,
    **context: Any,
) -> HTMLResponse:
    csrf = _csrf(request)
    html = TEMPLATES.get_template(name).render(
        csrf=csrf, me=token.name if token else None, path=request.url.path, **context
    )
    response = HTMLResponse(html, status_code=http_status, headers=HEADERS)
    if request.cookies.get(CSRF_COOKIE) != csrf:
        response.set_cookie(
            CSRF_COOKIE,
            csrf,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
    return response


def _error(request: Request, status: int, title: str, detail: str) -> HTMLResponse:
    detail = scrub(detail)  # an error's text may quote a credential
    return _render(request, "error.html", status, title=title, detail=detail, code=status)


async def _form(request: Request) -> dict[str, str]:
    """A urlencoded form, after checking its CSRF field against the cookie."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise _Refused(415, "Unsupported form", "send the page's own form")
    body = await request.body()
    if len(body) > MAX_FORM:
        raise _Refused(413, "Too large", f"a form may carry at most {MAX_FORM} bytes")
    fields = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = fields.get("csrf", "")
    if not cookie or not secrets.compare_digest(cookie.encode(), sent.encode()):
        raise _Refused(
            403,
            "Form expired",
            "the form's security token does not match this browser's: reload the page and "
            "try again (forms from other sites are refused)",
        )
    return fields


class _Refused(Exception):
    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


def _local(target: str | None, default: str = "/reviews") -> str:
    """Only a path on this site (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    return target


def _workflows(svc: Operations, token: Token) -> list[str]:
    return [w.name for w in svc.list_workflows(token)]


# ---- login --------------------------------------------------------------------------------------


@router.get("/")
async def home() -> RedirectResponse:
    return RedirectResponse("/reviews", 303)


@router.get("/login")
async def login_page(request: Request, next: str | None = None) -> HTMLResponse:
    return _render(request, "login.html", next=_local(next), error=None)


@router.post("/login")
async def login(request: Request) -> Response:
    try:
        fields = await _form(request)
    except _Refused as exc:
        return _error(request, exc.status, exc.title, exc.detail)
    target = _local(fields.get("next"))
    secret = fields.get("token", "").strip()
    try:
        _service(request).authenticate(secret)
    except Unauthenticated:
        message = "Enter your API token." if not secret else "Unknown or revoked token."
        return _render(request, "login.html", 401, next=target, error=message)
    response = RedirectResponse(target, 303)
    response.set_cookie(
        COOKIE, secret, httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )
    return response


@router.api_route("/logout", methods=["GET", "POST"])
async def logout() -> RedirectResponse:
    response = RedirectResponse("/login", 303)
    response.delete_cookie(COOKIE, httponly=True, samesite="strict")
    return response


# ---- reviews ------------------------------------------------------------------------------------


@router.get("/reviews")
async def reviews(
    request: Request, workflow: str | None = None, status: str | None = "pending"
) -> HTMLResponse:
    svc, token = _service(request), _token(request)
    status = status if status in REVIEW_STATUSES else None
    items = svc.list_reviews(token, workflow=workflow or None, status=status, limit=500)
    if status != "pending":
        items.reverse()  # decided ones: newest first
    return _render(
        request,
        "reviews.html",
        token=token,
        items=items,
        workflows=_workflows(svc, token),
        workflow=workflow or "",
        status=status or "",
        statuses=REVIEW_STATUSES,
    )


def _neighbours(queue: list[ReviewView], review_id: str) -> tuple[str | None, str | None]:
    ids = [r.review_id for r in queue]
    if review_id not in ids:
        return None, ids[0] if ids else None
    i = ids.index(review_id)
    return (ids[i - 1] if i > 0 else None), (ids[i + 1] if i + 1 < len(ids) else None)


async def _review_page(
    request: Request,
    token: Token,
    review_id: str,
    workflow: str,
    status: int = 200,
    error: str | None = None,
    draft: str | None = None,
) -> HTMLResponse:
    svc = _service(request)
    item = svc.get_review(token, review_id)
    notice = None
    can_decide = item.status == "pending" and token.allows("review", item.workflow)
    if can_decide:
        try:
            item = svc.claim_review(token, review_id)
        except Conflict as exc:
            notice, can_decide = str(exc), False
    elif item.status == "pending":
        notice = (
            f"Your token ({token.name}) may read this item but not decide it: "
            "that needs the reviewer or admin role."
        )
    queue = svc.list_reviews(token, workflow=workflow or None, status="pending", limit=QUEUE)
    prev_id, next_id = _neighbours(queue, review_id)
    shown = {f: item.input.get(f, item.output.get(f)) for f in item.show}
    return _render(
        request,
        "review.html",
        status,
        token=token,
        item=item,
        shown=shown,
        workflow=workflow,
        can_decide=can_decide,
        notice=notice,
        error=error,
        draft=draft if draft is not None else _pretty(item.output),
        prev_id=prev_id,
        next_id=next_id,
        done=request.query_params.get("done"),
        masked=item.redacted and MASK in json.dumps(item.output),
    )


@router.get("/reviews/{review_id}")
async def review(request: Request, review_id: str, workflow: str = "") -> HTMLResponse:
    """The item; opening it claims it for this token (others see it taken)."""
    return await _review_page(request, _token(request), review_id, workflow)


def _with_workflow(path: str, workflow: str, **params: str) -> str:
    query = {**({"workflow": workflow} if workflow else {}), **params}
    return f"{path}?{urlencode(query)}" if query else path


@router.post("/reviews/{review_id}/decide")
async def decide(request: Request, review_id: str) -> Response:
    """Approve or correct; the run resumes at once. Then the next pending item, or the run."""
    svc, token = _service(request), _token(request)
    try:
        fields = await _form(request)
    except _Refused as exc:
        return _error(request, exc.status, exc.title, exc.detail)
    workflow = fields.get("workflow", "")
    action = fields.get("action")
    if action == "approve":
        decision = await svc.decide(token, review_id, "approve")
    elif action == "correct":
        draft = fields.get("output", "")
        problem, output = _parse_output(draft)
        if output is None:
            return await _review_page(request, token, review_id, workflow, 400, problem, draft)
        decision = await svc.decide(token, review_id, "correct", output)
    else:
        return _error(request, 400, "Unknown action", "choose approve or correct")
    run_id = decision.run.run_id
    queue = svc.list_reviews(token, workflow=workflow or None, status="pending", limit=QUEUE)
    free = [r for r in queue if r.claimed_by in (None, token.name)]
    if free:
        target = _with_workflow(f"/reviews/{free[0].review_id}", workflow, done=run_id)
    else:
        target = f"/runs/{run_id}"
    return RedirectResponse(target, 303)


def _parse_output(text: str) -> tuple[str | None, dict[str, Any] | None]:
    """``(problem, None)`` or ``(None, the object)``: a correction is one JSON object."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"The correction is not valid JSON: {exc.msg} (line {exc.lineno}).", None
    if not isinstance(value, dict):
        return "The correction must be a JSON object: {…}.", None
    where = surrogate_path(value)
    if where is not None:
        return f"The correction: {surrogate_message(where)}.", None
    if MASK in json.dumps(value):
        return (
            f"The correction still holds {MASK!r} values: fields hidden from your token "
            "cannot be corrected here (a correction replaces the whole output).",
            None,
        )
    return None, value


@router.post("/reviews/{review_id}/release")
async def release(request: Request, review_id: str) -> Response:
    svc, token = _service(request), _token(request)
    try:
        fields = await _form(request)
    except _Refused as exc:
        return _error(request, exc.status, exc.title, exc.detail)
    svc.release_review(token, review_id)
    return RedirectResponse(_with_workflow("/reviews", fields.get("workflow", "")), 303)


# ---- runs ---------------------------------------------------------------------------------------


def _cost(run: RunView) -> float:
    return sum(s.cost for s in run.steps or ())


@router.get("/runs")
async def runs(
    request: Request, workflow: str | None = None, status: str | None = None, limit: int = 50
) -> HTMLResponse:
    svc, token = _service(request), _token(request)
    status = status if status in RUN_STATUSES else None
    listed = svc.list_runs(
        token, workflow=workflow or None, status=status, limit=max(1, min(limit, 500))
    )
    # the list has no steps; the cost column needs them
    rows = [svc.get_run(token, r.run_id) for r in listed]
    return _render(
        request,
        "runs.html",
        token=token,
        runs=rows,
        cost=_cost,
        workflows=_workflows(svc, token),
        workflow=workflow or "",
        status=status or "",
        statuses=RUN_STATUSES,
    )


@router.get("/runs/{run_id}")
async def run(request: Request, run_id: str) -> HTMLResponse:
    svc, token = _service(request), _token(request)
    view = svc.get_run(token, run_id)
    review_id = f"{run_id}:{view.waiting_step}" if view.status == "waiting_review" else None
    live = view.status not in ("succeeded", "failed", "cancelled")
    return _render(
        request,
        "run.html",
        token=token,
        run=view,
        cost=_cost(view),
        tokens=sum(s.input_tokens + s.output_tokens for s in view.steps or ()),
        review_id=review_id,
        live=live,
    )
