"""The console's routers and assets, joined to the API by `install(app)`."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from console import auth, dashboard, inventory, orders
from console.layout import HERE, STATIC_PATH

ROUTERS: list[APIRouter] = [auth.router, orders.router, inventory.router, dashboard.router]


def install(app: FastAPI) -> None:
    for router in ROUTERS:
        app.include_router(router)
    app.mount(STATIC_PATH, StaticFiles(directory=HERE / "static"), name="console-static")
