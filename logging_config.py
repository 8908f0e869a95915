"""One logging set-up for every process (API, worker, stand-ins, local stack).

structlog and the standard library share one chain of processors, so a line from
our code, from the Temporal SDK or from uvicorn carries the same keys: an ISO UTC
timestamp, the level, the logger name, and whatever order_id/workflow_id/request_id
the code bound with ``structlog.contextvars.bind_contextvars``. Lines are JSON when
stdout is not a terminal (containers, CI, log shippers) and coloured text on a terminal.

Lines from ``workflow.logger`` and ``activity.logger`` carry Temporal's details as
fields too (workflow_id, run_id, activity_type, attempt, ...), and the order_id an
order workflow's id names, so every line about an order can be found by its order_id.

Customer data never reaches a log line: just before rendering, every event (its
message, fields, nested dicts, models and exception text) goes through
``mask_personal_data``.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import structlog
from pydantic import BaseModel
from structlog.typing import EventDict, Processor
from temporalio import activity, workflow

from models.names import order_id_of

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


# The dicts Temporal's workflow and activity loggers attach to each record.
_TEMPORAL_DETAILS = ("temporal_workflow", "temporal_activity")


def add_temporal_context(_logger: object, _method: str, event_dict: EventDict) -> EventDict:
    """Lift Temporal's details out of the dicts its loggers attach, and name the order an order workflow's id names.

    Fields the code bound or passed itself win over Temporal's.
    """
    for key in _TEMPORAL_DETAILS:
        details = event_dict.pop(key, None)
        if isinstance(details, Mapping):
            for name, value in details.items():
                event_dict.setdefault(name, value)
    workflow_id = event_dict.get("workflow_id")
    if "order_id" not in event_dict and isinstance(workflow_id, str) and (order_id := order_id_of(workflow_id)):
        event_dict["order_id"] = order_id
    return event_dict


REDACTED = "[redacted]"
# Fields whose values are personal wherever they appear, matched without regard to case.
PERSONAL_KEYS = frozenset(
    {
        "email",
        "phone",
        "address",
        "shipping_address",
        "billing_address",
        "line1",
        "line2",
        "postal_code",
        "national_id",
        "payment_token",
        "customer_name",
        "recipient_name",
        "full_name",
        "first_name",
        "last_name",
    }
)
PERSONAL_SUFFIXES = ("_email", "_phone", "_address", "_postal_code", "_national_id", "_payment_token")
# "name" is personal only where it names a person or an address, not a logger, a SKU or a step.
PERSON_HOLDERS = frozenset({"customer", "recipient", "contact", "person"})
EMAIL_IN_TEXT = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")


def mask_personal_data(_logger: object, _method: str, event_dict: EventDict) -> EventDict:
    """Replace customers' personal data in a log event: by field name (email, phone, a customer's name,
    addresses and their lines, postal codes, national ids, payment tokens), at any depth, and any
    e-mail address written into text."""
    masked: EventDict = _mask_mapping(event_dict, holder=None)
    return masked


def _is_personal(key: str) -> bool:
    key = key.lower()
    return key in PERSONAL_KEYS or key.endswith(PERSONAL_SUFFIXES)


def _mask_mapping(mapping: Mapping[Any, Any], holder: str | None) -> dict[Any, Any]:
    # A mapping that holds contact details or address lines describes a person: its name is theirs.
    names_a_person = (holder or "").lower() in PERSON_HOLDERS or any(
        isinstance(key, str) and _is_personal(key) for key in mapping
    )
    masked = {}
    for key, value in mapping.items():
        if isinstance(key, str) and (_is_personal(key) or (names_a_person and key.lower() == "name")):
            masked[key] = REDACTED if value is not None else None
        else:
            masked[key] = _mask(value, holder=key if isinstance(key, str) else None)
    return masked


def _mask(value: Any, holder: str | None) -> Any:
    if isinstance(value, str):
        return EMAIL_IN_TEXT.sub(REDACTED, value) if "@" in value else value
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        return _mask_mapping(value, holder)
    if isinstance(value, list | tuple | set | frozenset):
        return [_mask(item, holder) for item in value]
    if isinstance(value, BaseModel):
        return _mask_mapping(value.model_dump(mode="json"), holder)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _mask_mapping(dataclasses.asdict(value), holder)
    # Anything else is rendered by its repr; an e-mail address in it is masked all the same.
    text = repr(value)
    return EMAIL_IN_TEXT.sub(REDACTED, text) if "@" in text else value


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.ExtraAdder(),
        add_temporal_context,
        _drop_color_message,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def configure_logging(
    level: str = "INFO", json: bool | None = None, stream: TextIO | None = None, *, cache_loggers: bool = True
) -> None:
    """Route structlog and stdlib logging through one formatter writing to `stream` (stdout by default).

    ``json=None`` picks JSON lines unless the stream is a terminal. Safe to call more
    than once: the last call wins and no handler is added twice. ``cache_loggers=False`` is for
    a configuration that is undone later (a test's): a logger cached under it would keep it.
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
        cache_logger_on_first_use=cache_loggers,
    )

    # Exceptions become text before masking, so an e-mail address in an exception message is masked too.
    final: list[Processor] = [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        structlog.processors.format_exc_info,
        mask_personal_data,
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
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

    # Temporal's loggers would also append their details to the message text; here they are fields.
    workflow.logger.workflow_info_on_message = False
    activity.logger.activity_info_on_message = False
