"""One logging set-up for every process (API, worker, stand-ins, local stack).

structlog and the standard library share one chain of processors, so a line from
our code, from the Temporal SDK or from uvicorn carries the same keys: an ISO UTC
timestamp, the level, the logger name, and whatever order_id/workflow_id the code
bound with ``structlog.contextvars.bind_contextvars``. Lines are JSON when stdout
is not a terminal (containers, CI, log shippers) and coloured text on a terminal.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog
from structlog.typing import EventDict, Processor

# Marks the root handler this module installs, so a second call replaces it
# rather than printing every line twice.
_HANDLER_NAME = "oms-structlog"

# uvicorn installs its own handlers unless started with log_config=None; taking
# them away here lets its lines reach the root handler in our format instead.
_ADOPTED_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "temporalio")


def _drop_color_message(_logger: object, _method: str, event_dict: EventDict) -> EventDict:
    # uvicorn passes a terminal-coloured copy of each message as an extra field.
    event_dict.pop("color_message", None)
    return event_dict


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.ExtraAdder(),
        _drop_color_message,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def configure_logging(level: str = "INFO", json: bool | None = None, stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging through one formatter writing to stdout (or `stream`).

    ``json=None`` picks JSON lines unless the stream is a terminal. Safe to call more
    than once: the last call wins and no handler is added twice.
    """
    stream = stream or sys.stdout
    if json is None:
        json = not stream.isatty()
    shared = _shared_processors()

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Rendering happens in the handler, so loggers cached before a second
        # call still follow the newest renderer.
        cache_logger_on_first_use=True,
    )

    renderer: Processor
    final: list[Processor] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if json:
        final.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    formatter = structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=[*final, renderer])

    handler = logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)

    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == _HANDLER_NAME:
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())

    for name in _ADOPTED_LOGGERS:
        adopted = logging.getLogger(name)
        adopted.handlers.clear()
        adopted.propagate = True
