"""The API's Prometheus metrics: every answer by method, route template and status code, and the orders and
shortages in the database, read at each scrape of GET /metrics (api/routes/metrics.py).

Requests are named by their route's template (`/orders/{order_id}`), never by the path sent, so the
number of series stays bounded whatever callers send: a path no route serves is "unmatched", a
method no route could serve is "other". The middleware is the outermost one, so it times and counts
the answers the guard gives at the door (401, 429) too.

Each app has a registry of its own, so that several apps can live in one process (as in the tests).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.route_templates import RouteTemplates
from db.metrics import ServiceState
from models.order import OrderStatus
from models.refunds import RefundStatus
from models.returns import ReturnStatus

UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# A `_created` series beside every counter and histogram doubles what is stored, for nothing used here.
disable_created_metrics()


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=self.registry)
        self.requests = Counter(
            "oms_http_requests",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "oms_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by method and route template.",
            ["method", "route"],
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else "other"
        self.requests.labels(method, route, str(status)).inc()
        self.duration.labels(method, route).observe(seconds)

    def exposition(self, state: ServiceState | None) -> bytes:
        """The text Prometheus scrapes: the request metrics, and the database's state unless it could not be read."""
        return generate_latest(_Scrape(self.registry, state))


class _Scrape:
    def __init__(self, registry: CollectorRegistry, state: ServiceState | None) -> None:
        self._registry = registry
        self._state = state

    def collect(self) -> Iterable[Metric]:
        yield from self._registry.collect()
        if self._state is not None:
            yield from state_metrics(self._state)


def state_metrics(state: ServiceState) -> Iterator[Metric]:
    """Gauges of the database's state; every order status is reported, with 0 for none, so no series vanishes."""
    orders = GaugeMetricFamily("oms_orders", "Orders by status, as recorded in the database.", labels=["status"])
    counts = {status.value: 0 for status in OrderStatus} | state.orders_by_status
    for status, count in sorted(counts.items()):
        orders.add_metric([status], count)
    yield orders
    returns = GaugeMetricFamily("oms_returns", "Returns by status, as recorded in the database.", labels=["status"])
    for status, count in sorted(({status.value: 0 for status in ReturnStatus} | state.returns_by_status).items()):
        returns.add_metric([status], count)
    yield returns
    yield GaugeMetricFamily(
        "oms_returns_needing_attention",
        "Returns flagged for an operator, e.g. a refund that keeps failing.",
        state.returns_needing_attention,
    )
    refunds = GaugeMetricFamily(
        "oms_refunds", "Refunds by status (a return's and those without a return), as recorded.", labels=["status"]
    )
    for status, count in sorted(({status.value: 0 for status in RefundStatus} | state.refunds_by_status).items()):
        refunds.add_metric([status], count)
    yield refunds
    yield GaugeMetricFamily(
        "oms_refunds_needing_attention",
        "Refunds flagged for an operator: finance keeps failing them.",
        state.refunds_needing_attention,
    )
    yield GaugeMetricFamily(
        "oms_open_shortages", "Open shortages: orders waiting for stock, one per order and SKU.", state.open_shortages
    )
    yield GaugeMetricFamily(
        "oms_open_shortage_units", "Units of stock the open shortages wait for.", state.open_shortage_units
    )
    yield GaugeMetricFamily(
        "oms_undelivered_purchasing_notices",
        "Open shortages whose latest notice purchasing has not received yet: pending, failing or refused.",
        state.undelivered_purchasing_notices,
    )
    if state.oldest_open_shortage is not None:
        yield GaugeMetricFamily(
            "oms_oldest_open_shortage_timestamp_seconds",
            "When the longest-waiting open shortage began, in Unix time; absent when none is open.",
            state.oldest_open_shortage.timestamp(),
        )


class RequestMetrics:
    """ASGI middleware counting and timing every HTTP answer into `metrics`."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self._metrics = metrics
        self._routes = RouteTemplates()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        # An error before any answer was started is answered 500 further out.
        status = 500

        async def answer(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, answer)
        finally:
            template, _ = self._routes.resolve(scope["app"], scope["path"])
            self._metrics.observe(scope["method"], template or UNMATCHED, status, time.perf_counter() - started)
