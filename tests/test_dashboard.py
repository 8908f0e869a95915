"""The dashboard and purchasing pages over HTTP: who sees which page and link, and decisions only with the
session's CSRF token. Their charts in a real browser are tests/test_dashboard_browser.py."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models.forecast_tables import ReorderSuggestionRow
from tests.keys import Keys
from tests.test_console import console, csrf_of, signed_in, temporal

Sessions = async_sessionmaker[AsyncSession]
# Fixtures of the console's tests, used here as they are there.
__all__ = ["console", "temporal"]


def nav_links(page: str) -> list[str]:
    nav = re.search(r'<nav aria-label="Main">(.*?)</nav>', page, re.S)
    assert nav, "no navigation on the page"
    return re.findall(r">([^<>]+)</a>", nav.group(1))


async def open_suggestion(sessionmaker: Sessions) -> str:
    async with sessionmaker.begin() as session:
        session.add(
            ReorderSuggestionRow(
                suggestion_id="s-1",
                run_id="run-1",
                sku="MUG-001",
                warehouse="WH-EAST",
                quantity=48,
                reorder_point=60,
                on_hand=12,
                available=12,
                on_order=0,
                lead_time_days=7,
                model="AutoETS",
                status="open",
                created_at=datetime.now(UTC),
            )
        )
    return "s-1"


async def test_operators_see_the_dashboard_purchasing_their_page_and_admins_both(console: str, keys: Keys) -> None:
    async with signed_in(console, keys.operator) as http:
        operator_dashboard = await http.get("/console/dashboard")
        operator_purchasing = await http.get("/console/purchasing")
        backwards = await http.get("/console/dashboard", params={"from": "2026-11-15", "to": "2026-11-02"})
    async with signed_in(console, keys.purchasing) as http:
        purchasing_dashboard = await http.get("/console/dashboard")
        purchasing_page = await http.get("/console/purchasing")
    async with signed_in(console, keys.admin) as http:
        admin_pages = [await http.get(path) for path in ("/console/dashboard", "/console/purchasing")]

    assert operator_dashboard.status_code == 200
    assert "Purchasing" not in nav_links(operator_dashboard.text) and "Dashboard" in nav_links(operator_dashboard.text)
    assert operator_purchasing.status_code == 403
    # A period the analytics API refuses is said on the page, which shows the default one.
    assert backwards.status_code == 422
    assert "That period cannot be shown (from: must not be after `to`)" in backwards.text
    assert purchasing_dashboard.status_code == 403
    assert purchasing_page.status_code == 200
    assert "Dashboard" not in nav_links(purchasing_page.text) and "Purchasing" in nav_links(purchasing_page.text)
    assert [page.status_code for page in admin_pages] == [200, 200]
    assert {"Dashboard", "Purchasing"} <= set(nav_links(admin_pages[0].text))


async def test_a_suggestion_is_decided_only_with_the_sessions_csrf_token_and_never_by_an_operator(
    console: str, keys: Keys, sessionmaker: Sessions
) -> None:
    suggestion_id = await open_suggestion(sessionmaker)
    dismiss = f"/console/purchasing/{suggestion_id}/dismiss"
    async with signed_in(console, keys.operator) as http:
        page = await http.get("/console/dashboard")
        by_operator = await http.post(dismiss, data={"csrf": csrf_of(page)})
    async with signed_in(console, keys.purchasing) as http:
        page = await http.get("/console/purchasing")
        forged = await http.post(dismiss, data={"csrf": "0" * 64})
        still_open = await http.get("/console/purchasing")
        dismissed = await http.post(dismiss, data={"csrf": csrf_of(page)})
        shown = await http.get(dismissed.headers["location"])
        accepted = await http.post(f"/console/purchasing/{suggestion_id}/accept", data={"csrf": csrf_of(page)})

    assert 'action="/console/purchasing/s-1/accept"' in page.text
    assert by_operator.status_code == 403 and forged.status_code == 403
    assert 'data-suggestion="s-1"' in still_open.text.split('id="decided"')[0]
    assert (dismissed.status_code, dismissed.headers["location"]) == (303, "/console/purchasing?decided=s-1")
    assert "Dismissed: 48 units of MUG-001 for WH-EAST." in shown.text
    assert 'action="/console/purchasing/s-1/accept"' not in shown.text
    # Accepting what was dismissed is refused as the API refuses it, on the page.
    assert accepted.status_code == 409
    assert 'role="alert"' in accepted.text and "dismissed" in accepted.text
