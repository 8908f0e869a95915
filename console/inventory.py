"""Inventory in the console: stock per SKU and warehouse, low stock, open shortages, and receiving stock.

The same functions as the API's inventory and purchasing routes: db.stock for the levels,
db.shortages for what orders wait for, api.routes.inventory.book_receipt to book a delivery
and wake the waiting orders. Shortages and receiving are purchasing's (and admins').
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse

from api.deps import SessionmakerDep, SettingsDep, TemporalDep
from api.refusals import ApiError
from api.routes.inventory import book_receipt
from api.schemas import StockReceipt
from console.layout import Abilities, CsrfChecked, Purchaser, Viewer, render
from console.session import PREFIX
from db.shortages import open_shortages
from db.stock import StockError, stock_levels
from models.order import SKU_PATTERN
from models.purchasing import ShortageList
from security.api_keys import Principal

router = APIRouter(prefix=f"{PREFIX}/inventory", include_in_schema=False)


async def _page(
    request: Request,
    viewer: Principal,
    sessionmaker: SessionmakerDep,
    settings: SettingsDep,
    *,
    received: str = "",
    refusal: str = "",
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    async with sessionmaker.begin() as session:
        levels = await stock_levels(session)
        shortages = await open_shortages(session) if Abilities.of(viewer.role).shortages else ShortageList(items=[])
    low = settings.low_stock_units
    return render(
        request,
        "inventory.html",
        viewer,
        status_code=status_code,
        levels=levels,
        low_skus=[level for level in levels if level.available <= low],
        low_stock_units=low,
        shortages=shortages.items,
        received=received,
        refusal=refusal,
        form=form or {},
    )


@router.get("", response_class=HTMLResponse)
async def inventory(
    request: Request,
    viewer: Viewer,
    sessionmaker: SessionmakerDep,
    settings: SettingsDep,
    received: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    return await _page(request, viewer, sessionmaker, settings, received=received)


@router.post("/receipts", dependencies=[CsrfChecked], response_model=None)
async def receive(
    request: Request,
    viewer: Purchaser,
    sessionmaker: SessionmakerDep,
    settings: SettingsDep,
    client: TemporalDep,
    sku: Annotated[str, Form(max_length=64)],
    warehouse: Annotated[str, Form(max_length=32)],
    quantity: Annotated[str, Form(max_length=12)],
    receipt_id: Annotated[str, Form(max_length=128)] = "",
) -> HTMLResponse | RedirectResponse:
    """Book a delivery as POST /inventory/{sku}/receipts does; the inventory page again, with the outcome."""
    form = {"sku": sku, "warehouse": warehouse, "quantity": quantity, "receipt_id": receipt_id}
    try:
        if re.fullmatch(SKU_PATTERN, sku) is None:
            raise ValueError(f"{sku!r} is not a SKU")
        receipt = StockReceipt(warehouse=warehouse.strip(), quantity=int(quantity))
        _, booked = await book_receipt(sessionmaker, client, settings, sku, receipt, receipt_id.strip() or None)
    except ValueError:
        refusal, code = "a receipt needs a SKU, a warehouse code and a whole number of units from 1", 422
    except StockError as error:
        refusal, code = str(error), status.HTTP_409_CONFLICT
    except ApiError as error:
        refusal, code = error.detail, error.status_code
    else:
        refusal, code = "", status.HTTP_303_SEE_OTHER
    if refusal:
        return await _page(request, viewer, sessionmaker, settings, refusal=refusal, form=form, status_code=code)
    outcome = f"{receipt.quantity} units of {sku} received at {receipt.warehouse}"
    if not booked:
        outcome = f"receipt {receipt_id.strip()} was booked before: nothing changed"
    return RedirectResponse(f"{PREFIX}/inventory?{urlencode({'received': outcome})}", status_code=303)
