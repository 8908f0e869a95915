"""Control and inspection of the stand-ins for tests and local operators: faults, records, reset. No credential."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from standins.deps import StoreDep, TrackingDep
from standins.state import Fault, RecordKind

router = APIRouter(prefix="/_control", tags=["control"])


@router.put("/faults")
async def set_fault(fault: Fault, store: StoreDep) -> Fault:
    store.set_fault(fault)
    return fault


@router.get("/faults")
async def get_faults(store: StoreDep) -> dict[str, Any]:
    """The faults in force, and how often each kind struck each service since the last reset."""
    return {"faults": store.faults(), "struck": store.strikes()}


@router.delete("/faults", status_code=204)
async def clear_faults(store: StoreDep) -> Response:
    store.clear_faults()
    return Response(status_code=204)


@router.get("/records/{kind}")
async def records(kind: RecordKind, store: StoreDep) -> dict[str, list[dict[str, Any]]]:
    return {"items": store.items(kind)}


@router.post("/reset", status_code=204)
async def reset(store: StoreDep, tracking: TrackingDep) -> Response:
    tracking.cancel_all()
    store.reset()
    return Response(status_code=204)
