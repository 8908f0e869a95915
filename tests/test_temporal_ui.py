"""Operators in a real browser: the Temporal UI of `make run`, and the codec sign-in, in Chromium.

Playwright drives Debian's Chromium (tests/browsers.py): it never downloads a browser of its
own, and a missing browser fails these tests. One local stack, started as `make run` starts it
on free ports, serves the whole module; each test has a browser context of its own, so it starts
with no cookie and none of the UI's settings stored. Screenshots of what the operator saw are
kept in each test's tmp_path.
"""

from __future__ import annotations

import json
import os
import re
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, Response, ViewportSize, expect

from scripts.local_stack import ADMIN_KEY_FILE, DEMO_ORDER
from settings import Settings
from tests.browsers import chromium
from tests.keys import bearer
from tests.test_local_stack import (
    alive,
    descendants,
    read_order,
    stack_environment,
    start_stack,
    stop,
    wait_until_ready,
)

# Every test here reaches the whole stack, through a fixture the tiers do not know.
pytestmark = pytest.mark.system

DESKTOP: ViewportSize = {"width": 1400, "height": 1000}
PHONE: ViewportSize = {"width": 390, "height": 844}
# What the UI shows while its codec endpoint refuses it.
CODEC_REFUSED = "Codec Server could not connect"
# The UI decodes a page's payloads on a loaded machine too.
DECODED_SECONDS = 60
NAMESPACE = Settings.model_fields["temporal_namespace"].default
# The demo order at 12,000.00, above the total that sends an order to manual review: it waits there.
ORDER_FOR_REVIEW = json.dumps(
    {**json.loads(DEMO_ORDER), "lines": [{"sku": "LAMP-004", "quantity": 10, "unit_price": "1200.00"}]}
)
# The timeline's words for a cancellation requested from Temporal rather than through the API.
TEMPORAL_ACTOR = "temporal"
TEMPORAL_CANCEL_REASON = "cancellation requested from the Temporal UI or CLI"


@dataclass(frozen=True)
class LocalStack:
    env: dict[str, str]
    api: str
    ui: str
    admin_key: str
    workflow_id: str

    @property
    def codec_endpoint(self) -> str:
        return f"{self.api}/codec"

    def order_page(self, workflow_id: str | None = None) -> str:
        """The workflow page of an order in the Temporal UI; the demo order's by default."""
        return f"{self.ui}/namespaces/{NAMESPACE}/workflows/{workflow_id or self.workflow_id}"

    def as_admin(self, method: str, path: str, **options: Any) -> httpx.Response:
        """A call to the API with the local admin key, as the banner's curl makes it."""
        headers = {**bearer(self.admin_key), **options.pop("headers", {})}
        return httpx.request(method, f"{self.api}{path}", headers=headers, timeout=10, **options)

    def place_order(self, order: str = DEMO_ORDER) -> httpx.Response:
        headers = {"Content-Type": "application/json", "Idempotency-Key": str(uuid.uuid4())}
        return self.as_admin("POST", "/orders", content=order, headers=headers)


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """`make run` on free ports, with one demo order delivered (so its page has an input, events and a result)."""
    folder = tmp_path_factory.mktemp("temporal-ui")
    env = stack_environment(folder / "data")
    output = folder / "stack.log"
    process = start_stack(env, output)
    try:
        wait_until_ready(process, env, output)
        stack = LocalStack(
            env=env,
            api=f"http://127.0.0.1:{env['OMS_API_PORT']}",
            ui=f"http://127.0.0.1:{env['OMS_STACK_TEMPORAL_UI_PORT']}",
            admin_key=(folder / "data" / ADMIN_KEY_FILE).read_text().strip(),
            workflow_id="",
        )
        placed = stack.place_order()
        assert placed.status_code == 202, placed.text
        read_order(env, placed.json()["order_id"], "delivered")
        yield replace(stack, workflow_id=placed.json()["workflow_id"])
        stop(process, output)
    finally:
        if process.poll() is None:
            left = descendants(process.pid)
            process.kill()
            process.wait()
            for pid in left:
                if alive(pid):
                    os.killpg(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A desktop-sized page in a fresh browser context: no cookies, nothing in local storage."""
    context = await browser.new_context(viewport=DESKTOP)
    yield await context.new_page()
    await context.close()


def codec_answers(page: Page, stack: LocalStack) -> list[int]:
    """The status codes of the codec calls the page makes from now on, as they arrive."""
    answers: list[int] = []

    def record(response: Response) -> None:
        if response.url.startswith(stack.codec_endpoint + "/decode"):
            answers.append(response.status)

    page.on("response", record)
    return answers


async def until_settled(page: Page, answers: list[int]) -> None:
    """Until the page has made no codec call for a second: the UI decodes a page's payloads in batches."""
    seen = -1
    for _ in range(DECODED_SECONDS):
        if len(answers) == seen:
            return
        seen = len(answers)
        await page.wait_for_timeout(1000)
    raise AssertionError(f"the UI was still calling the codec endpoint after {DECODED_SECONDS}s")


async def test_opening_an_order_before_signing_in_to_the_codec_locks_nobody_out(
    local_stack: LocalStack, page: Page, tmp_path: Path
) -> None:
    decode_answers = codec_answers(page, local_stack)
    elsewhere: list[str] = []
    page.on(
        "request",
        lambda request: None if request.url.startswith("http://127.0.0.1:") else elsewhere.append(request.url),
    )

    await page.goto(local_stack.order_page())
    # The banner above the order; the icon at the top right says the same.
    await expect(page.locator("#content").get_by_text(CODEC_REFUSED)).to_be_visible(timeout=DECODED_SECONDS * 1000)
    await until_settled(page, decode_answers)
    await page.screenshot(path=tmp_path / "order-before-sign-in.png", full_page=True)
    placed = local_stack.place_order()

    assert placed.status_code == 202, placed.text
    # More unsigned calls than the failures that block a source, and each a plain 401, never a 429.
    assert len(decode_answers) > Settings.model_fields["auth_failure_limit"].default
    assert set(decode_answers) == {401}
    # Nor does the UI of the local stack reach out of the machine (for its news feed).
    assert elsewhere == []


async def set_up_the_codec(page: Page, stack: LocalStack, key: str, tmp_path: Path) -> str:
    """Steps 1 to 3 of the README's "decoded orders in the Temporal UI"; returns the endpoint pasted."""
    # 1. Sign in at /codec/login with an operator or admin key.
    await page.goto(f"{stack.api}/codec/login")
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("status")).to_have_text(re.compile("^Signed in"))
    endpoint = await page.locator("#endpoint").inner_text()
    # 2. In the Temporal UI, open the Codec Server settings from the icon at the top right.
    await page.goto(stack.ui)
    await page.get_by_role("button", name=re.compile("^Codec Server")).click()
    # 3. Use the browser setting: the endpoint the sign-in page shows, with cross-origin credentials; Apply.
    await page.get_by_text("Use my browser setting and ignore Cluster-level setting.").click()
    await page.get_by_placeholder("Paste your endpoint here").fill(endpoint)
    await page.get_by_text("Include cross-origin credentials").click()
    await page.screenshot(path=tmp_path / "codec-settings.png")
    await page.get_by_role("button", name="Apply").click()
    return endpoint


async def test_an_operator_following_the_readme_sees_an_order_decoded(
    local_stack: LocalStack, page: Page, tmp_path: Path
) -> None:
    endpoint = await set_up_the_codec(page, local_stack, local_stack.admin_key, tmp_path)
    # 4. Click an order in the workflow list.
    await page.get_by_role("link", name=local_stack.workflow_id).click()

    # Its input (the order as placed) and its result (the order as it ended), decoded.
    await expect(page.get_by_text('"MUG-001"').first).to_be_visible(timeout=DECODED_SECONDS * 1000)
    await expect(page.get_by_text('"delivered"').first).to_be_visible(timeout=DECODED_SECONDS * 1000)
    await page.wait_for_load_state("networkidle")
    await page.screenshot(path=tmp_path / "order-decoded.png", full_page=True)
    await expect(page.get_by_text(CODEC_REFUSED)).to_have_count(0)
    assert endpoint == local_stack.codec_endpoint


async def test_a_session_whose_key_was_revoked_since_locks_nobody_out(
    local_stack: LocalStack, page: Page, tmp_path: Path
) -> None:
    made = local_stack.as_admin("POST", "/keys", json={"name": "night shift", "role": "operator"})
    assert made.status_code == 201, made.text
    await set_up_the_codec(page, local_stack, made.json()["key"], tmp_path)
    revoked = local_stack.as_admin("POST", f"/keys/{made.json()['key_id']}/revoke")
    assert revoked.status_code == 200, revoked.text
    decode_answers = codec_answers(page, local_stack)

    await page.get_by_role("link", name=local_stack.workflow_id).click()
    await expect(page.locator("#content").get_by_text(CODEC_REFUSED)).to_be_visible(timeout=DECODED_SECONDS * 1000)
    await until_settled(page, decode_answers)
    await page.screenshot(path=tmp_path / "order-with-revoked-session.png", full_page=True)
    placed = local_stack.place_order()

    assert placed.status_code == 202, placed.text
    # Every call carried the same revoked key: one wrong guess, however many calls.
    assert len(decode_answers) > Settings.model_fields["auth_failure_limit"].default
    assert set(decode_answers) == {401}


async def test_the_codec_sign_in_page_fits_a_phone_and_names_the_endpoint_to_paste(
    local_stack: LocalStack, browser: Browser, tmp_path: Path
) -> None:
    context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        page = await context.new_page()
        await page.goto(f"{local_stack.api}/codec/login")
        await page.screenshot(path=tmp_path / "sign-in-phone.png", full_page=True)

        await expect(page.get_by_label("API key")).to_be_visible()
        await expect(page.get_by_role("button", name="Sign in")).to_be_in_viewport()
        await expect(page.get_by_text(local_stack.codec_endpoint, exact=True)).to_be_visible()
        overflow = await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0
    finally:
        await context.close()


async def test_request_cancellation_in_the_temporal_ui_cancels_an_order_waiting_for_review_as_the_api_does(
    local_stack: LocalStack, page: Page, tmp_path: Path
) -> None:
    placed = local_stack.place_order(ORDER_FOR_REVIEW)
    assert placed.status_code == 202, placed.text
    order_id, workflow_id = placed.json()["order_id"], placed.json()["workflow_id"]
    read_order(local_stack.env, order_id, "pending_review")
    # Signed in to the codec, so the order's result reads as the API's.
    await set_up_the_codec(page, local_stack, local_stack.admin_key, tmp_path)
    await page.goto(local_stack.order_page(workflow_id))
    status = page.get_by_test_id("execution-status")
    await expect(status).to_have_text("Running")

    await page.get_by_role("button", name="Request Cancellation").click()
    dialog = page.get_by_role("dialog", name="Cancel Workflow")
    await expect(dialog).to_be_visible()
    await page.screenshot(path=tmp_path / "cancel-dialog.png")
    await dialog.get_by_role("button", name="Confirm").click()

    # The run finished its work, the cancelled order as its result: Completed, not Canceled.
    await expect(status).to_have_text("Completed", timeout=DECODED_SECONDS * 1000)
    # The viewer draws only the lines in sight: the status is near the top; the API shows the rest.
    result = page.get_by_role("textbox", name="Result")
    await expect(result).to_contain_text('"status": "cancelled"', timeout=DECODED_SECONDS * 1000)
    await page.screenshot(path=tmp_path / "order-cancelled.png", full_page=True)
    order = read_order(local_stack.env, order_id)
    assert order["status"] == "cancelled"
    assert order["cancellation_reason"] == TEMPORAL_CANCEL_REASON
    [requested] = [entry for entry in order["timeline"] if entry["event"] == "cancellation requested"]
    assert (requested["actor"], requested["detail"]) == (TEMPORAL_ACTOR, TEMPORAL_CANCEL_REASON)
    ended = order["timeline"][-1]
    assert (ended["event"], ended["actor"], ended["status"]) == ("order cancelled", TEMPORAL_ACTOR, "cancelled")
