"""PATCH /orders/{id} through the HTTP API, against the real order workflow on the dev server.

The worker runs the real OrderWorkflow with stand-in activities (tests/fakes.py), so every answer
(200, 404, 409, 412) comes from the API's checks and the workflow's own update validator.
"""

from __future__ import annotations

import httpx

from models.order import ReviewDecision, ReviewOutcome
from tests.builders import AMSTERDAM, line
from tests.fakes import FakeSystems
from tests.keys import Keys, bearer
from tests.test_api_workflow import api, api_url, fakes, operator, place, until

__all__ = ["api", "api_url", "fakes", "operator"]


async def test_a_client_changes_its_order_with_if_match_and_an_operator_changes_it_again(
    api: httpx.AsyncClient, operator: httpx.AsyncClient, fakes: FakeSystems, api_url: str, keys: Keys
) -> None:
    fakes.review = ReviewOutcome(decision=ReviewDecision.MANUAL, reasons=["customer is flagged"])
    fakes.stock["NUT-3"] = 50
    order_id = await place(api)
    placed = await until(api, order_id, "pending_review")
    assert placed["revision"] == 1

    new_lines = [line("WIDGET-1", 3, "50.00"), line("NUT-3", 10, "0.50")]
    response = await api.patch(
        f"/orders/{order_id}", json={"lines": new_lines, "note": "one more widget"}, headers={"If-Match": '"1"'}
    )

    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == '"2"'
    changed = response.json()
    assert (changed["revision"], changed["total"], changed["status"]) == (2, "155.00", "pending_review")
    assert [(each["line_no"], each["sku"], each["quantity"]) for each in changed["lines"]] == [
        (1, "WIDGET-1", 3),
        (3, "NUT-3", 10),
    ]
    assert changed["timeline"][-1]["actor"] == "client"
    reading = await api.get(f"/orders/{order_id}")
    read = reading.json()
    assert (read["revision"], [each["sku"] for each in read["lines"]]) == (2, ["WIDGET-1", "NUT-3"])
    # What a client reads carries the revision to send back in If-Match.
    assert reading.headers["ETag"] == '"2"'

    stale = await api.patch(f"/orders/{order_id}", json={"shipping_address": AMSTERDAM}, headers={"If-Match": '"1"'})
    assert stale.status_code == 412
    assert stale.headers["ETag"] == '"2"'
    assert stale.json() == {"detail": "order is at revision 2, not 1"}

    async with httpx.AsyncClient(base_url=api_url, timeout=30, headers=bearer(keys.other_client)) as other:
        assert (await other.patch(f"/orders/{order_id}", json={"shipping_address": AMSTERDAM})).status_code == 404

    by_operator = await operator.patch(f"/orders/{order_id}", json={"shipping_address": AMSTERDAM})
    assert by_operator.status_code == 200, by_operator.text
    assert (by_operator.json()["revision"], by_operator.json()["shipping_address"]["city"]) == (3, "Amsterdam")

    empty = await api.patch(f"/orders/{order_id}", json={})
    assert (empty.status_code, empty.json()) == (409, {"detail": "the change asks for the order as it stands"})
    await operator.post(f"/orders/{order_id}/review", json={"decision": "approve"})
    shipped = await until(api, order_id, "shipped")
    assert fakes.bookings[shipped["shipment"]["booking_id"]].shipment.address.city == "Amsterdam"
    assert fakes.stock == {"WIDGET-1": 97, "BOLT-7": 100, "NUT-3": 40}
    late = await api.patch(f"/orders/{order_id}", json={"lines": [line("WIDGET-1", 1, "50.00")]})
    assert late.status_code == 409
    assert late.json()["detail"].startswith("order is shipped")
