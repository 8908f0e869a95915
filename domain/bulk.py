"""The rules of bulk jobs, as pure functions over plain data: no database, no Temporal, no HTTP.

- An import's orders, from JSON or from a CSV file of one row per order line grouped by `external_ref`,
  each validated as POST /orders validates its body; every problem named by row and field.
- A job's tally (done, refused, failed) and its status.
- The cursor of a job's item pages.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from models.bulk import MAX_JOB_ITEMS, ImportedOrder, ItemOutcome, JobItem, RowProblem
from models.order import OrderRequest

# The CSV file: one row per order line. Order columns repeat on every line of an order, or are left
# blank after its first; a line's own columns are sku, quantity and unit_price.
CUSTOMER_COLUMNS = {
    "customer_id": "id",
    "customer_name": "name",
    "customer_email": "email",
    "customer_phone": "phone",
}
ADDRESS_COLUMNS = {
    "ship_name": "name",
    "ship_line1": "line1",
    "ship_line2": "line2",
    "ship_city": "city",
    "ship_postal_code": "postal_code",
    "ship_country": "country",
}
ORDER_COLUMNS = ("currency", "backorder_policy")
LINE_COLUMNS = ("sku", "quantity", "unit_price")
CSV_COLUMNS = ("external_ref", *CUSTOMER_COLUMNS, *ADDRESS_COLUMNS, *ORDER_COLUMNS, *LINE_COLUMNS)
OPTIONAL_COLUMNS = frozenset({"customer_email", "customer_phone", "ship_line2", "currency", "backorder_policy"})
REQUIRED_COLUMNS = tuple(column for column in CSV_COLUMNS if column not in OPTIONAL_COLUMNS)
# Columns of the order, as opposed to the line: they must agree across an order's rows.
_ORDER_LEVEL = tuple(column for column in CSV_COLUMNS if column not in LINE_COLUMNS and column != "external_ref")
# Email and phone may be blank; the review rules judge them (as for POST /orders).
_BLANK_ALLOWED = frozenset({"customer_email", "customer_phone"})

# The most problems one 422 lists: a file of a thousand bad rows gets no answer ten times its size.
MAX_PROBLEMS = 200


class ImportRefused(Exception):
    """The import as a whole cannot be read: nothing is started. `problems` say where and why."""

    def __init__(self, problems: list[RowProblem]) -> None:
        super().__init__(f"{len(problems)} problem(s) in the import")
        self.problems = problems[:MAX_PROBLEMS]


class TooManyOrders(ValueError):
    """A bulk action's filter matches more orders than one job takes, or none."""


@dataclass
class Parsed:
    """One order of an import: its reference, its first row, and the order or what is wrong with it."""

    ref: str
    row: int
    order: ImportedOrder | None = None
    problems: list[RowProblem] = field(default_factory=list)


# ---- JSON: {"orders": [...], "error_policy": ...} ----


def orders_from_json(orders: Sequence[Mapping[str, Any]]) -> list[Parsed]:
    """Each order body (positions from 1) validated as an ImportedOrder; repeated refs are problems."""
    _within_limit(len(orders))
    parsed = []
    for row, body in enumerate(orders, start=1):
        ref = body.get("external_ref") if isinstance(body, Mapping) else None
        one = Parsed(ref=ref if isinstance(ref, str) else f"#{row}", row=row)
        try:
            one.order = ImportedOrder.model_validate(body)
        except ValidationError as error:
            one.problems = [
                RowProblem(
                    row=row, field=".".join(str(part) for part in problem["loc"]) or "order", message=_msg(problem)
                )
                for problem in error.errors()
            ]
        parsed.append(one)
    _refuse_repeated_refs(parsed)
    return parsed


def body_problems(invalid: ValidationError) -> list[RowProblem]:
    """A JSON import that is not one at all (not an object, no orders, too many): row 0 is the whole request."""
    return [
        RowProblem(row=0, field=_path(problem["loc"]) if problem["loc"] else "body", message=_msg(problem))
        for problem in invalid.errors(include_url=False)
    ]


# ---- CSV ----


def orders_from_csv(text: str) -> list[Parsed]:
    """The orders of a CSV file, rows grouped by external_ref in the order refs first appear.

    A file that cannot be read as a whole (no header, unknown or missing columns, too many orders)
    raises ImportRefused; a bad row makes its order's `problems`.
    """
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        raise ImportRefused([RowProblem(row=1, field="header", message="the file has no header row")]) from None
    header = [name.strip() for name in header]
    problems = [
        RowProblem(row=1, field=name, message=f"unknown column; the columns are {', '.join(CSV_COLUMNS)}")
        for name in header
        if name not in CSV_COLUMNS
    ]
    problems += [
        RowProblem(row=1, field=name, message="required column missing")
        for name in REQUIRED_COLUMNS
        if name not in header
    ]
    problems += [
        RowProblem(row=1, field=name, message="column named twice") for name in set(header) if header.count(name) > 1
    ]
    if problems:
        raise ImportRefused(problems)
    groups: dict[str, list[tuple[int, dict[str, str]]]] = {}
    try:
        for cells in reader:
            row = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(header):
                problems.append(
                    RowProblem(row=row, field="row", message=f"{len(cells)} cells where the header has {len(header)}")
                )
                continue
            values = {name: cell.strip() for name, cell in zip(header, cells, strict=True)}
            ref = values["external_ref"]
            if not ref:
                problems.append(RowProblem(row=row, field="external_ref", message="required"))
                continue
            groups.setdefault(ref, []).append((row, values))
            _within_limit(len(groups))
    except csv.Error as error:
        problems.append(RowProblem(row=reader.line_num, field="row", message=f"not CSV: {error}"))
    if problems:
        raise ImportRefused(problems)
    if not groups:
        raise ImportRefused([RowProblem(row=2, field="row", message="the file has no orders")])
    return [_order_of_rows(ref, rows) for ref, rows in groups.items()]


def _order_of_rows(ref: str, rows: list[tuple[int, dict[str, str]]]) -> Parsed:
    first_row, first = rows[0]
    parsed = Parsed(ref=ref, row=first_row)
    for row, values in rows[1:]:
        for column in _ORDER_LEVEL:
            if column in values and values[column] and values[column] != first.get(column, ""):
                parsed.problems.append(
                    RowProblem(row=row, field=column, message=f"differs from row {first_row} of the same external_ref")
                )
    body: dict[str, Any] = {
        "external_ref": ref,
        "customer": _part(first, CUSTOMER_COLUMNS),
        "shipping_address": _part(first, ADDRESS_COLUMNS),
        "lines": [
            {"sku": values["sku"], "quantity": _count(values["quantity"]), "unit_price": values["unit_price"]}
            for _, values in rows
        ],
    }
    for column in ORDER_COLUMNS:
        if first.get(column):
            body[column] = first[column]
    try:
        parsed.order = ImportedOrder.model_validate(body)
    except ValidationError as error:
        parsed.problems += [_csv_problem(problem, rows) for problem in error.errors()]
    if parsed.problems:
        parsed.order = None
    return parsed


def _part(values: Mapping[str, str], columns: Mapping[str, str]) -> dict[str, str]:
    return {
        name: values.get(column, "")
        for column, name in columns.items()
        if values.get(column) or column in _BLANK_ALLOWED or column in REQUIRED_COLUMNS
    }


def _count(cell: str) -> int | str:
    # A quantity cell is text; "3" is 3 and "-1" is -1 (refused by the model as out of range),
    # anything else stays text for the model to refuse as not a number.
    return int(cell) if re.fullmatch(r"[+-]?[0-9]{1,9}", cell.strip()) else cell


_CSV_COLUMN_OF = {
    **{("customer", name): column for column, name in CUSTOMER_COLUMNS.items()},
    **{("shipping_address", name): column for column, name in ADDRESS_COLUMNS.items()},
}


def _csv_problem(problem: Mapping[str, Any], rows: list[tuple[int, dict[str, str]]]) -> RowProblem:
    """A validation problem of an order built from `rows`, at the row and column it came from."""
    loc = tuple(problem["loc"])
    row = rows[0][0]
    if loc[:1] == ("lines",) and len(loc) >= 2 and isinstance(loc[1], int) and loc[1] < len(rows):
        row = rows[loc[1]][0]
        column = str(loc[2]) if len(loc) > 2 else "sku"
    elif loc[:1] == ("lines",):
        column = "sku"
    elif loc[:2] in _CSV_COLUMN_OF:
        column = _CSV_COLUMN_OF[loc[:2]]
    else:
        column = str(loc[0]) if loc else "row"
    return RowProblem(row=row, field=column, message=_msg(problem))


def _path(loc: Iterable[object]) -> str:
    return ".".join(str(part) for part in loc) or "order"


def _msg(problem: Mapping[str, Any]) -> str:
    return "unknown field" if problem["type"] == "extra_forbidden" else str(problem["msg"])


def _within_limit(orders: int) -> None:
    if orders > MAX_JOB_ITEMS:
        raise ImportRefused(
            [RowProblem(row=0, field="orders", message=f"more than {MAX_JOB_ITEMS} orders; split the import")]
        )


def _refuse_repeated_refs(parsed: list[Parsed]) -> None:
    first: dict[str, int] = {}
    for one in parsed:
        if one.order is None:
            continue
        if one.ref in first:
            one.problems.append(
                RowProblem(
                    row=one.row, field="external_ref", message=f"repeats the external_ref of row {first[one.ref]}"
                )
            )
            one.order = None
        else:
            first[one.ref] = one.row


def without_ref(order: ImportedOrder) -> OrderRequest:
    """The order as POST /orders takes it: its external_ref becomes its idempotency key, not a field."""
    return OrderRequest.model_validate(order.model_dump(exclude={"external_ref"}))


def problems_of(parsed: Iterable[Parsed]) -> list[RowProblem]:
    return [problem for one in parsed for problem in one.problems]


def refusal_reason(problems: Sequence[RowProblem]) -> str:
    """One line saying what is wrong with an order, for its refused item."""
    return "; ".join(f"row {problem.row} {problem.field}: {problem.message}" for problem in problems)[:1000]


# ---- A job's progress. ----


@dataclass(frozen=True)
class Tally:
    total: int
    done: int
    refused: int
    failed: int
    pending: int


def tally(items: Iterable[JobItem]) -> Tally:
    counts = {outcome: 0 for outcome in ItemOutcome}
    for item in items:
        counts[item.outcome] += 1
    return Tally(
        total=sum(counts.values()),
        done=counts[ItemOutcome.DONE],
        refused=counts[ItemOutcome.REFUSED],
        failed=counts[ItemOutcome.FAILED],
        pending=counts[ItemOutcome.PENDING],
    )


# ---- Pages of a job's items. ----


class InvalidPageCursor(ValueError):
    """A cursor of a job's item pages this service did not hand out."""


def encode_page_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode().rstrip("=")


def decode_page_cursor(cursor: str) -> int:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        offset = raw["offset"]
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError, KeyError) as error:
        raise InvalidPageCursor("invalid cursor") from error
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset <= MAX_JOB_ITEMS:
        raise InvalidPageCursor("invalid cursor")
    return offset
