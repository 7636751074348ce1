"""The review pages in a real headless Chromium (Debian's, driven by Playwright) against a real
``relayflow serve``: log in with a token, decide one review by keyboard and correct another's
JSON, watch the runs finish; a wrong token and a viewer's decision get clear refusals."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from relayflow.store.sql_store import SqlStore
from tests.server.helpers import Server, client, make_token, serving, wait_for, write_workflows

CHROMIUM = Path("/usr/bin/chromium")
#: no sandbox (root in a container), and nothing that reaches for the network
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
WAIT_MS = 30_000

#: prep adds 1 to ``n``; every item goes to a person; after adds 1 again
TRIAGE = """\
name: triage
workflow:
  - name: prep
    type: transform
    script: prep.py
  - name: check
    type: human_review
    when: "true"
    instructions: Check that the count is right.
    show: [n]
  - name: after
    type: transform
    script: prep.py
"""


@dataclass
class Web:
    server: Server
    store: str
    tokens: dict[str, str]

    def api(self, who: str = "admin") -> httpx.Client:
        return client(self.server, self.tokens[who])

    def submit(self, data: dict[str, Any]) -> str:
        with self.api("operator") as ops:
            response = ops.post("/v1/workflows/triage/runs", json={"input": data})
        assert response.status_code == 202, response.text
        run_id: str = response.json()["run_id"]
        return run_id

    def parked(self, data: dict[str, Any]) -> str:
        run_id = self.submit(data)
        with self.api() as c:
            wait_for(
                lambda: c.get(f"/v1/runs/{run_id}").json()["status"],
                lambda s: s == "waiting_review",
            )
        return run_id

    def review(self, run_id: str) -> dict[str, Any]:
        with self.api() as c:
            body: dict[str, Any] = c.get(f"/v1/reviews/{run_id}:check").json()
            return body


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    folder = tmp_path_factory.mktemp("web")
    write_workflows(folder)
    (folder / "triage.yaml").write_text(TRIAGE)
    store = str(folder / "runs.db")
    tokens = {
        "admin": make_token(store, "root", "*=admin"),
        "operator": make_token(store, "ops", "triage=operator"),
        "reviewer": make_token(store, "rev", "triage=reviewer"),
        "viewer": make_token(store, "view", "triage=viewer"),
    }
    with serving(store, folder) as server:
        site = Web(server, store, tokens)
        with site.api() as admin:
            registered = admin.post("/v1/workflows", json={"path": str(folder / "triage.yaml")})
            assert registered.status_code == 201, registered.text
        yield site


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    if not CHROMIUM.exists():
        pytest.skip(f"no {CHROMIUM}: apt-get install chromium (scripts/test-services.sh does)")
    with sync_api.sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        except sync_api.Error as exc:
            pytest.skip(f"{CHROMIUM} does not start here: {exc.message.splitlines()[0]}")
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    context.set_default_timeout(WAIT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def log_in(page: Any, web: Web, who: str, then: str = "/reviews") -> None:
    page.goto(f"{web.server.url}{then}")
    assert "/login" in page.url, "a page without a login must send the browser to /login"
    page.fill("#token", web.tokens[who])
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(re.escape(then) + r"$"))


def test_a_reviewer_approves_by_keyboard_corrects_json_and_sees_the_runs_finish(
    web: Web, page: Any
) -> None:
    from playwright.sync_api import expect

    first = web.parked({"n": 1, "who": "first"})
    second = web.parked({"n": 10, "who": "second"})
    ids = {f"{first}:check", f"{second}:check"}

    log_in(page, web, "reviewer")
    expect(page.locator("h1")).to_contain_text("Review queue")
    rows = page.locator("tr[data-review]")
    assert {rows.nth(i).get_attribute("data-review") for i in range(rows.count())} == ids
    cookie = {c["name"]: c for c in page.context.cookies()}["relayflow_token"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    page.keyboard.press("j")  # select the first item, open it
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/reviews/[^/]+:check$"))
    opened = page.url.rsplit("/", 1)[1]
    other = (ids - {opened}).pop()
    expect(page.locator("#reason")).to_have_text("when: true")
    expect(page.locator(".instructions")).to_contain_text("Check that the count is right.")
    expect(page.locator("#item-output")).to_contain_text('"n":')
    assert web.review(opened.split(":")[0])["claimed_by"] == "rev", "opening claims the item"

    page.keyboard.press("a")  # approve: the next item opens, the decided run goes on
    page.wait_for_url(re.compile(re.escape(other) + r"\?done="))
    expect(page.locator("[role=status]")).to_contain_text(opened.split(":")[0])

    page.keyboard.press("c")
    assert page.evaluate("document.activeElement.id") == "correction"
    page.fill("#correction", '{"n": 41, "label": oops}')
    page.keyboard.press("Control+Enter")  # the browser refuses broken JSON before sending
    expect(page.locator("#correction-error")).to_contain_text("not valid JSON")
    assert f"/reviews/{other}?" in page.url, "nothing was sent"
    page.fill("#correction", '{"n": 41, "label": "fixed"}')
    page.keyboard.press("Control+Enter")

    corrected_run = other.split(":")[0]
    page.wait_for_url(re.compile(rf"/runs/{corrected_run}$"))  # queue empty: the run's page
    expect(page.locator("#run-status")).to_have_text("succeeded")  # live: it reloads on events
    expect(page.locator("tr[data-step=check]")).to_contain_text("human")
    expect(page.locator("#run-output")).to_contain_text('"label": "fixed"')

    approved_run = opened.split(":")[0]
    page.goto(f"{web.server.url}/runs/{approved_run}")
    expect(page.locator("#run-status")).to_have_text("succeeded")
    page.goto(f"{web.server.url}/runs?workflow=triage&status=succeeded")
    expect(page.locator(f"tr[data-run='{approved_run}']")).to_be_visible()

    store = SqlStore(web.store)
    try:
        for run_id in (first, second):
            record = store.get_run(run_id)
            assert record is not None and record.status == "succeeded"
        corrected = store.get_run(corrected_run)
        assert corrected is not None and corrected.output == {"n": 42, "label": "fixed"}
        labels = {f["run_id"]: f for f in store.feedback("triage")}
        assert labels[corrected_run]["label"] == {"n": 41, "label": "fixed"}
        assert labels[corrected_run]["source"] == "review"
        approval = store.get_review(f"{approved_run}:check")
        correction = store.get_review(f"{corrected_run}:check")
        assert approval is not None and approval.status == "approved"
        assert correction is not None
        assert (correction.status, correction.reviewer) == ("corrected", "rev")
    finally:
        store.close()


def test_a_wrong_token_shows_the_error_and_sets_no_cookie(web: Web, page: Any) -> None:
    from playwright.sync_api import expect

    page.goto(f"{web.server.url}/login")
    page.fill("#token", "rf_nope_thisisnotatoken")
    with page.expect_response(lambda r: r.url.endswith("/login")) as answer:
        page.click("button[type=submit]")
    assert answer.value.status == 401
    expect(page.locator("#login-error")).to_have_text("Unknown or revoked token.")
    assert "relayflow_token" not in {c["name"] for c in page.context.cookies()}


def test_a_viewer_may_read_an_item_but_deciding_it_is_a_403_page(web: Web, page: Any) -> None:
    from playwright.sync_api import expect

    run_id = web.parked({"n": 5})
    log_in(page, web, "viewer", f"/reviews/{run_id}:check")
    expect(page.locator("#notice")).to_contain_text("may read this item but not decide it")
    assert page.locator("#approve-form").count() == 0
    page.keyboard.press("a")  # no form: nothing happens
    assert web.review(run_id)["claimed_by"] is None

    # the form a reviewer would send, from the viewer's session (its CSRF token included)
    with page.expect_navigation():
        page.evaluate(
            """(action) => {
                const form = document.createElement("form");
                form.method = "post";
                form.action = action;
                for (const [name, value] of [
                    ["csrf", document.querySelector("meta[name=csrf-token]").content],
                    ["action", "approve"],
                ]) {
                    const input = document.createElement("input");
                    input.type = "hidden";
                    input.name = name;
                    input.value = value;
                    form.appendChild(input);
                }
                document.body.appendChild(form);
                form.submit();
            }""",
            f"/reviews/{run_id}:check/decide",
        )
    expect(page.locator("h1")).to_contain_text("403 Access denied")
    expect(page.locator("#error-detail")).to_contain_text("needs role reviewer or admin")
    assert web.review(run_id)["status"] == "pending"
    with web.api() as admin:
        assert any(
            d["token_name"] == "view" and d["action"] == "review"
            for d in admin.get("/v1/denials").json()
        )


# ---- the same pages over plain HTTP: what a browser would not let through ---------------------


@contextmanager
def session(web: Web, who: str) -> Iterator[tuple[httpx.Client, str]]:
    """A logged-in client (cookies) and its CSRF token, as the login form leaves them."""
    with httpx.Client(base_url=web.server.url, timeout=30) as c:
        login = c.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', login.text)
        assert csrf is not None
        done = c.post("/login", data={"csrf": csrf.group(1), "token": web.tokens[who], "next": "/"})
        assert done.status_code == 303
        yield c, csrf.group(1)


def test_forms_without_the_csrf_token_are_refused(web: Web) -> None:
    run_id = web.parked({"n": 2})
    with session(web, "reviewer") as (c, csrf):
        forged = c.post(f"/reviews/{run_id}:check/decide", data={"action": "approve"})
        wrong = c.post(
            f"/reviews/{run_id}:check/decide", data={"action": "approve", "csrf": csrf[::-1]}
        )
        ok = c.post(f"/reviews/{run_id}:check/decide", data={"action": "approve", "csrf": csrf})
    assert forged.status_code == wrong.status_code == 403
    assert "security token does not match" in forged.text
    assert ok.status_code == 303
    assert web.review(run_id)["status"] == "approved"


def test_the_server_checks_a_correction_and_escapes_what_it_shows(web: Web) -> None:
    run_id = web.parked({"n": 3, "note": "<script>alert(1)</script>"})
    with session(web, "reviewer") as (c, csrf):
        page = c.get(f"/reviews/{run_id}:check")
        assert "<script>alert(1)</script>" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        for bad, message in (("[1, 2]", "must be a JSON object"), ("{", "not valid JSON")):
            answer = c.post(
                f"/reviews/{run_id}:check/decide",
                data={"action": "correct", "output": bad, "csrf": csrf},
            )
            assert answer.status_code == 400
            assert message in answer.text
        assert web.review(run_id)["status"] == "pending"
        anonymous = httpx.get(f"{web.server.url}/runs/{run_id}", follow_redirects=False)
        assert anonymous.status_code == 303
        assert anonymous.headers["location"].startswith("/login?next=")
