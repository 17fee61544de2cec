"""The dashboard in a real browser: pip ``playwright`` driving Debian's ``chromium``
(``executable_path``; ``playwright install`` cannot download here). Log in, submit a job from
the UI, watch it run and finish, read its logs, cancel another, check the tenant boundary, and
save a screenshot of each page ($SUANLI_SCREENSHOT_DIR, else the test's tmp dir).

Needs ``$SUANLI_TEST_CHROMIUM`` (set by .ci/setup.d/60-chromium.sh; locally /usr/bin/chromium
is used when it exists): skipped without it in a public clone, a failure in CI."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from needs import need
from service_support import Live, live_service, wait_state

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage"]
TIMEOUT_MS = 30_000


def chromium_path() -> str | None:
    path = os.environ.get("SUANLI_TEST_CHROMIUM") or shutil.which("chromium")
    return path if path and Path(path).exists() else None


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    path = chromium_path()
    need(path is not None, "Chromium ($SUANLI_TEST_CHROMIUM, from .ci/setup.d/60-chromium.sh)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need(False, "the playwright package (pip install playwright)")
        raise
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, headless=True, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_service("sqlite", tmp_path_factory.mktemp("dash-browser")) as lv:
        yield lv


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = os.environ.get("SUANLI_SCREENSHOT_DIR")
    out = Path(d) if d else tmp_path_factory.mktemp("screenshots")
    out.mkdir(parents=True, exist_ok=True)
    return out


def login(browser: Any, live: Live, token: str) -> Any:
    ctx = browser.new_context(viewport={"width": 1360, "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(live.url + "/ui/")
    assert "/ui/login" in page.url
    page.fill("#token", token)
    page.click("#login")
    page.wait_for_url(re.compile(r".*/ui/$"))
    return page


def test_browser_end_to_end(chromium: Any, live: Live, shots: Path) -> None:
    from playwright.sync_api import expect

    # login page, then a wrong token
    ctx = chromium.new_context(viewport={"width": 1360, "height": 900})
    page = ctx.new_page()
    page.goto(live.url + "/ui/jobs")
    page.screenshot(path=str(shots / "01-login.png"))
    page.fill("#token", "sl_wrong")
    page.click("#login")
    expect(page.locator("#login-error")).to_have_text("invalid or revoked token")
    ctx.close()

    page = login(chromium, live, live.token)
    expect(page.locator("#whoami")).to_have_text("default/admin")
    expect(page.locator("#sites .site")).to_have_count(2)
    expect(page.locator("#m-share")).to_contain_text("%")
    # the cookie is not readable from scripts (HttpOnly)
    assert page.evaluate("document.cookie") == ""
    cookie = next(c for c in page.context.cookies() if c["name"] == "suanli_token")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    page.screenshot(path=str(shots / "02-fleet.png"), full_page=True)

    # submit a job from the UI and watch it run and finish
    page.click("nav >> text=Submit")
    page.fill("#f-name", "ui-steps")
    page.fill("#f-command", "sh -c 'for s in 1 2 3; do echo step $s on $SUANLI_CHIP; "
                            "sleep 1; done'")
    page.check("input[name=chips][value=nvidia_h800_sxm]")
    page.screenshot(path=str(shots / "03-submit.png"), full_page=True)
    page.click("#submit")
    page.wait_for_url(re.compile(r".*/ui/jobs/\d+$"))
    job_id = int(page.url.rsplit("/", 1)[1])
    expect(page.locator("#job-state")).to_have_text("running", timeout=TIMEOUT_MS)
    expect(page.locator("#log")).to_contain_text("step 1 on nvidia_h800_sxm")
    page.screenshot(path=str(shots / "04-job-running.png"), full_page=True)
    expect(page.locator("#job-state")).to_have_text("succeeded", timeout=TIMEOUT_MS)
    expect(page.locator("#log")).to_have_text(
        "".join(f"step {s} on nvidia_h800_sxm\n" for s in (1, 2, 3)))
    expect(page.locator("#log")).to_have_attribute("data-eof", "1")
    expect(page.locator("#cancel")).to_have_count(0)
    expect(page.locator("#events")).to_contain_text("scheduled")
    page.screenshot(path=str(shots / "05-job-succeeded.png"), full_page=True)

    # cancel another (long) job from its page
    page.goto(live.url + "/ui/submit")
    page.fill("#f-name", "ui-long")
    page.fill("#f-command", "sleep 600")
    page.click("#submit")
    page.wait_for_url(re.compile(r".*/ui/jobs/\d+$"))
    long_id = int(page.url.rsplit("/", 1)[1])
    expect(page.locator("#job-state")).to_have_text("running", timeout=TIMEOUT_MS)
    page.click("#cancel")
    expect(page.locator("#job-state")).to_have_text("cancelled", timeout=TIMEOUT_MS)
    assert wait_state(live.admin, long_id, {"cancelled"})["state"] == "cancelled"

    # the jobs list shows both, and filters
    page.goto(live.url + "/ui/jobs")
    expect(page.locator(f"#jobs tr[data-id='{job_id}'] .state")).to_have_text("succeeded")
    expect(page.locator(f"#jobs tr[data-id='{long_id}'] .state")).to_have_text("cancelled")
    page.screenshot(path=str(shots / "06-jobs.png"), full_page=True)
    page.select_option("#filters select[name=state]", "cancelled")
    page.click("#filters button")
    expect(page.locator("#jobs tr.job")).to_have_count(1)

    for name, path in [("07-nodes", "/ui/nodes"), ("08-plots", "/ui/plots")]:
        page.goto(live.url + path)
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    expect(page.locator("#plot-util svg")).to_have_count(1)
    expect(page.locator("#plot-jct svg")).to_have_count(1)
    page.goto(live.url + "/ui/whatif")
    page.select_option("#w-policy", "fifo")
    page.select_option("select[name=source]", "history")
    page.click("#w-run")
    expect(page.locator("#whatif-table")).to_contain_text("fifo")
    page.screenshot(path=str(shots / "09-whatif.png"), full_page=True)

    # tenant boundary: another tenant sees neither the jobs nor their pages and logs
    other = live.token_for("eve", ["submit"], tenant="other")
    page_b = login(chromium, live, other)
    page_b.goto(live.url + "/ui/jobs")
    expect(page_b.locator("#jobs")).not_to_contain_text("ui-steps")
    expect(page_b.locator("#jobs tr.job")).to_have_count(0)
    resp = page_b.goto(live.url + f"/ui/jobs/{job_id}")
    assert resp is not None and resp.status == 404
    expect(page_b.locator("#error")).to_have_text(f"job {job_id} not found")
    page_b.screenshot(path=str(shots / "10-other-tenant.png"), full_page=True)
    resp = page_b.goto(live.url + f"/ui/jobs/{job_id}/logs.json")
    assert resp is not None and resp.status == 404
    # logging out ends the session
    page.goto(live.url + "/ui/")
    page.click("text=log out")
    page.wait_for_url(re.compile(r".*/ui/login$"))
    page.goto(live.url + "/ui/jobs")
    assert "/ui/login" in page.url
    assert len(list(shots.glob("*.png"))) >= 10
