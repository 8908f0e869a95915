"""The names that the API, the workflows, the activities and the Temporal UI must agree on."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

TASK_QUEUE = "orders"

ORDER_WORKFLOW = "OrderWorkflow"
REPLENISHMENT_WORKFLOW = "ReplenishmentWorkflow"

# Signals, updates and queries of the order workflow.
QUERY_STATUS = "status"
UPDATE_APPROVE = "approve"
UPDATE_REJECT = "reject"
UPDATE_CANCEL = "cancel"
SIGNAL_CANCEL = "cancel_order"
SIGNAL_RESTOCK = "restock"
SIGNAL_TRACKING = "tracking_event"

# Signals and queries of the replenishment workflow.
SIGNAL_SHORTAGE = "shortage"
SIGNAL_STOCK_RECEIVED = "stock_received"
SIGNAL_WITHDRAW = "withdraw"
QUERY_DEMAND = "demand"

# Memo of an order workflow: the API client that placed it, readable before the workflow has run.
MEMO_CLIENT_ID = "client_id"

# Typed custom search attributes, registered on the server at start.
SA_ORDER_STATUS = SearchAttributeKey.for_keyword("OrderStatus")
SA_CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
SA_ORDER_TOTAL = SearchAttributeKey.for_float("OrderTotal")
SA_SKUS = SearchAttributeKey.for_keyword_list("Skus")
SEARCH_ATTRIBUTES: dict[str, str] = {
    SA_ORDER_STATUS.name: "Keyword",
    SA_CUSTOMER_ID.name: "Keyword",
    SA_ORDER_TOTAL.name: "Double",
    SA_SKUS.name: "KeywordList",
}


def order_workflow_id(order_id: str) -> str:
    return f"order-{order_id}"


def replenishment_workflow_id(sku: str) -> str:
    return f"replenish-{sku}"
