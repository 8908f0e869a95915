"""Which route a path belongs to, by its template (`/orders/{order_id}`), for requests wherever they are answered.

The guard and the metrics see a request before routing does, and some requests (refused at the door,
or for no route at all) never reach it; they name a request by the template its path matches, so
that one refused at the door is named like one that got through, and a metric never holds a raw path.
"""

from __future__ import annotations

import re

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from starlette.routing import compile_path


class RouteTemplates:
    """The templates of an app's routes, compiled on first use."""

    def __init__(self) -> None:
        self._table: list[tuple[str, re.Pattern[str]]] | None = None

    def resolve(self, app: FastAPI, path: str) -> tuple[str | None, dict[str, str]]:
        """The template `path` matches and the values of its parameters; (None, {}) for no route."""
        if self._table is None:
            templates = {context.path for context in iter_route_contexts(app.routes) if context.path}
            self._table = [(template, compile_path(template)[0]) for template in sorted(templates)]
        for template, pattern in self._table:
            match = pattern.match(path)
            if match:
                return template, match.groupdict()
        return None, {}
