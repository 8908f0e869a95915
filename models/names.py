"""The names that the API, the workflows, the activities and the Temporal UI must agree on."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

TASK_QUEUE = "orders"

ORDER_WORKFLOW = "OrderWorkflow"
REPLENISHMENT_WORKFLOW = "ReplenishmentWorkflow"
RETURN_WORKFLOW = "ReturnWorkflow"
REFUND_WORKFLOW = "RefundWorkflow"

# Signals, updates and queries of the order workflow.
QUERY_STATUS = "status"
UPDATE_APPROVE = "approve"
UPDATE_REJECT = "reject"
UPDATE_CANCEL = "cancel"
UPDATE_CHANGE = "change"
SIGNAL_CANCEL = "cancel_order"
SIGNAL_RESTOCK = "restock"
SIGNAL_TRACKING = "tracking_event"

# Signals and queries of the replenishment workflow.
SIGNAL_SHORTAGE = "shortage"
SIGNAL_STOCK_RECEIVED = "stock_received"
SIGNAL_WITHDRAW = "withdraw"
SIGNAL_ALLOCATED = "allocated"
QUERY_DEMAND = "demand"
QUERY_UNDELIVERED_NOTICES = "undelivered_notices"

# Updates and signals of the return workflow (queries: QUERY_STATUS).
UPDATE_REVIEW_RETURN = "review_return"
UPDATE_RECEIVE_RETURN = "receive_return"
UPDATE_CANCEL_RETURN = "cancel_return"
UPDATE_RETRY_REFUND = "retry_refund"
SIGNAL_RETURN_TRACKING = "return_tracking_event"

# Temporal header carrying the id of the API request on whose behalf a workflow, signal, update or
# activity runs (observability/request_id.py).
HEADER_REQUEST_ID = "oms-request-id"

# Memo of an order workflow: the API client that placed it, readable before the workflow has run.
MEMO_CLIENT_ID = "client_id"

# Typed custom search attributes, registered on the server at start.
SA_ORDER_STATUS = SearchAttributeKey.for_keyword("OrderStatus")
SA_CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
SA_ORDER_TOTAL = SearchAttributeKey.for_float("OrderTotal")
SA_SKUS = SearchAttributeKey.for_keyword_list("Skus")
# Of a return workflow, beside CustomerId.
SA_ORDER_ID = SearchAttributeKey.for_keyword("OrderId")
SA_RETURN_STATUS = SearchAttributeKey.for_keyword("ReturnStatus")
SEARCH_ATTRIBUTES: dict[str, str] = {
    SA_ORDER_STATUS.name: "Keyword",
    SA_CUSTOMER_ID.name: "Keyword",
    SA_ORDER_TOTAL.name: "Double",
    SA_SKUS.name: "KeywordList",
    SA_ORDER_ID.name: "Keyword",
    SA_RETURN_STATUS.name: "Keyword",
}


ORDER_WORKFLOW_ID_PREFIX = "order-"


def order_workflow_id(order_id: str) -> str:
    return f"{ORDER_WORKFLOW_ID_PREFIX}{order_id}"


def order_id_of(workflow_id: str) -> str | None:
    """The order an order workflow id names; None for any other workflow id."""
    if workflow_id.startswith(ORDER_WORKFLOW_ID_PREFIX):
        return workflow_id.removeprefix(ORDER_WORKFLOW_ID_PREFIX) or None
    return None


def replenishment_workflow_id(sku: str) -> str:
    return f"replenish-{sku}"


RETURN_WORKFLOW_ID_PREFIX = "return-"


def return_workflow_id(return_id: str) -> str:
    return f"{RETURN_WORKFLOW_ID_PREFIX}{return_id}"


# The bulk job workflow (workflows/bulk.py): its query, updates and id.
BULK_WORKFLOW = "BulkJobWorkflow"
QUERY_BULK_PROGRESS = "progress"
UPDATE_BULK_RETRY = "retry_failed"
UPDATE_BULK_CANCEL = "cancel_job"
# Memo of a bulk job: the API client an import belongs to, readable however the job ended.
MEMO_JOB_CLIENT_ID = "job_client_id"
BULK_WORKFLOW_ID_PREFIX = "bulk-"


def bulk_workflow_id(job_id: str) -> str:
    return f"{BULK_WORKFLOW_ID_PREFIX}{job_id}"


REFUND_WORKFLOW_ID_PREFIX = "refund-"


def refund_workflow_id(refund_id: str) -> str:
    return f"{REFUND_WORKFLOW_ID_PREFIX}{refund_id}"
