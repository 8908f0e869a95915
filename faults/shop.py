"""A client of the API as a careful shop writes one: every call retried until it gets an answer.

A call whose answer is lost (connection refused or dropped, a timeout) or that is answered with a
5xx or 429 is sent again after a short backoff, with the same Idempotency-Key, so that retrying can
never place an order or book a receipt twice. Any other refusal is final and raised. The shop
counts what it went through: calls retried after a lost answer and after an error answer.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx

from faults.batch import PlannedOrder

RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})
FIRST_BACKOFF = 0.2
MAX_BACKOFF = 2.0


class Refused(Exception):
    """The API said no for good: a 4xx other than a request to come back later."""


class NoAnswer(Exception):
    """The API gave no usable answer within the shop's patience."""


@dataclass
class ShopCounts:
    lost_answers: int = 0
    error_answers: int = 0
    # Every order id the API answered with, per Idempotency-Key: more than one is a duplicated order.
    answered: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    @property
    def retries(self) -> int:
        return self.lost_answers + self.error_answers


class Shop:
    def __init__(self, api: httpx.AsyncClient, patience: float) -> None:
        self._api = api
        self._patience = patience
        self.counts = ShopCounts()

    async def place(self, order: PlannedOrder) -> str:
        """POST /orders until accepted; the order id."""
        response = await self._call("POST", "/orders", (202,), json=order.body, headers={"Idempotency-Key": order.key})
        order_id = str(response.json()["order_id"])
        self.counts.answered[order.key].add(order_id)
        return order_id

    async def cancel(self, order_id: str) -> bool:
        """Ask to cancel; True when the order was cancelled, False when it refused because it shipped or ended."""
        response = await self._call(
            "POST", f"/orders/{order_id}/cancel", (200, 409), json={"reason": "changed my mind"}
        )
        return response.status_code == 200 and response.json()["status"] == "cancelled"

    async def order(self, order_id: str) -> dict[str, Any]:
        response = await self._call("GET", f"/orders/{order_id}", (200,))
        answer: dict[str, Any] = response.json()
        return answer

    async def count_stock(self, sku: str, warehouse: str, on_hand: int) -> None:
        await self._call("PUT", f"/inventory/{sku}", (200,), json={"warehouse": warehouse, "on_hand": on_hand})

    async def receive_stock(self, sku: str, warehouse: str, quantity: int, receipt_id: str) -> None:
        await self._call(
            "POST",
            f"/inventory/{sku}/receipts",
            (200, 201),
            json={"warehouse": warehouse, "quantity": quantity},
            headers={"Idempotency-Key": receipt_id},
        )

    async def call(self, method: str, path: str, accept: tuple[int, ...], **request: Any) -> httpx.Response:
        """Any other call, retried as the shop's own are until answered with a status in `accept`."""
        return await self._call(method, path, accept, **request)

    async def _call(self, method: str, path: str, accept: tuple[int, ...], **request: Any) -> httpx.Response:
        deadline = time.monotonic() + self._patience
        backoff = FIRST_BACKOFF
        while True:
            try:
                response = await self._api.request(method, path, **request)
            except httpx.TransportError as error:
                self.counts.lost_answers += 1
                problem = repr(error)
            else:
                if response.status_code in accept:
                    return response
                if response.status_code not in RETRYABLE:
                    raise Refused(f"{method} {path} answered {response.status_code}: {response.text}")
                self.counts.error_answers += 1
                problem = f"{response.status_code} {response.text}"
            if time.monotonic() + backoff > deadline:
                raise NoAnswer(f"{method} {path}: no answer within {self._patience:.0f} s; last: {problem}")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)
