"""Stock per SKU: set a count (admins), read the level (purchasing, operators), book a delivery (purchasing)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Response, status
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError

from api.auth import require_role
from api.deps import SessionmakerDep, SettingsDep, TemporalDep
from api.errors import BODY_ERRORS, error_responses
from api.refusals import ReceiptNotPassedOn, temporal_unavailable
from api.schemas import StockCount, StockReceipt
from db.stock import UnknownSku, receive_stock, set_on_hand, stock_level
from models.fields import PRINTABLE_ASCII
from models.inventory import StockLevel
from models.order import SKU_PATTERN
from models.purchasing import StockReceived
from security.api_keys import Role
from settings import Settings
from temporal_client import signal_replenishment

router = APIRouter(prefix="/inventory", tags=["inventory"], responses=error_responses(401, 403))

SkuPath = Annotated[str, Path(min_length=1, max_length=64, pattern=SKU_PATTERN)]
ReceiptKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=128,
        pattern=PRINTABLE_ASCII,
        description="The receipt id: a delivery booked twice with one id is counted once.",
    ),
]


async def _level(session: AsyncSession, sku: str) -> StockLevel:
    level = await stock_level(session, sku)
    if level is None:
        raise UnknownSku(sku)
    return level


# Admins only: a count overwrites what is on the shelf.
@router.put(
    "/{sku}",
    response_model=StockLevel,
    responses=error_responses(409, *BODY_ERRORS, 503),
    dependencies=[Depends(require_role())],
)
async def count_stock(sku: SkuPath, count: StockCount, sessionmaker: SessionmakerDep) -> StockLevel:
    """Set the units on hand at a warehouse (a stock count); a new SKU or warehouse is created."""
    async with sessionmaker.begin() as session:
        await set_on_hand(session, sku, count.warehouse, count.on_hand)
        return await _level(session, sku)


@router.get(
    "/{sku}",
    response_model=StockLevel,
    responses=error_responses(404, 422, 503),
    dependencies=[Depends(require_role(Role.PURCHASING, Role.OPERATOR))],
)
async def get_stock(sku: SkuPath, sessionmaker: SessionmakerDep) -> StockLevel:
    async with sessionmaker.begin() as session:
        return await _level(session, sku)


@router.post(
    "/{sku}/receipts",
    status_code=status.HTTP_201_CREATED,
    response_model=StockLevel,
    responses={
        status.HTTP_200_OK: {"model": StockLevel, "description": "The receipt was booked before; nothing changed."},
        **error_responses(404, 409, *BODY_ERRORS, 503),
    },
    dependencies=[Depends(require_role(Role.PURCHASING))],
)
async def receive(
    sku: SkuPath,
    receipt: StockReceipt,
    response: Response,
    sessionmaker: SessionmakerDep,
    client: TemporalDep,
    settings: SettingsDep,
    receipt_id: ReceiptKey = None,
) -> StockLevel:
    """Book a delivery and wake the orders waiting for this SKU. A repeated receipt id changes nothing (200).

    A 503 after the booking (Temporal did not answer) names the receipt id: send the receipt again with
    it as Idempotency-Key, which books nothing twice and wakes the orders.
    """
    level, booked = await book_receipt(sessionmaker, client, settings, sku, receipt, receipt_id)
    if not booked:
        response.status_code = status.HTTP_200_OK
    return level


async def book_receipt(
    sessionmaker: async_sessionmaker[AsyncSession],
    client: Client,
    settings: Settings,
    sku: str,
    receipt: StockReceipt,
    receipt_id: str | None = None,
) -> tuple[StockLevel, bool]:
    """Book a delivery once per receipt id and wake the orders waiting for the SKU (the API's and the console's).

    Returns the SKU's level and whether this call booked it (False: booked before, nothing changed).
    """
    receipt_id = receipt_id or str(uuid.uuid4())
    async with sessionmaker.begin() as session:
        booked = await receive_stock(session, sku, receipt.warehouse, receipt.quantity, receipt_id)
        level = await _level(session, sku)
    # Signalled after the commit, so the workflow never looks for stock that is not there yet; signalled
    # on a repeat too, since the first attempt may have committed and then lost its signal.
    received = StockReceived(receipt_id=receipt_id, warehouse=receipt.warehouse, quantity=receipt.quantity)
    try:
        await signal_replenishment(
            client,
            sku,
            received,
            task_queue=settings.task_queue,
            rpc_timeout=timedelta(seconds=settings.api_workflow_timeout_seconds),
        )
    except RPCError as error:
        if not temporal_unavailable(error):
            raise
        raise ReceiptNotPassedOn(sku, receipt_id) from error
    return level, booked
