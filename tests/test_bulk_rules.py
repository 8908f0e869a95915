"""The rules of bulk imports and job pages, without a database or Temporal: CSV rows grouped into orders,
every problem named by its row and field, and the cursor of a job's item pages."""

from __future__ import annotations

import pytest

from domain import bulk as rules
from models.bulk import MAX_JOB_ITEMS, RowProblem
from tests.builders import order_body

HEADER = ",".join(rules.CSV_COLUMNS)


def row(ref: str, sku: str, quantity: str = "1", price: str = "10.00", **cells: str) -> str:
    values = {
        "external_ref": ref,
        "customer_id": "C-1",
        "customer_name": "Ada Lovelace",
        "customer_email": "ada@example.com",
        "ship_name": "Ada Lovelace",
        "ship_line1": "12 St James's Sq",
        "ship_city": "London",
        "ship_postal_code": "SW1Y 4JH",
        "ship_country": "GB",
        "sku": sku,
        "quantity": quantity,
        "unit_price": price,
        **cells,
    }
    return ",".join(values.get(column, "") for column in rules.CSV_COLUMNS)


def csv_of(*rows: str, header: str = HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


def test_csv_rows_are_grouped_into_orders_by_external_ref_in_the_order_refs_first_appear() -> None:
    continuation = "PO-1" + "," * (len(rules.CSV_COLUMNS) - 4) + ",TEE-2,3,19.50"
    text = csv_of(row("PO-1", "MUG-1", "2"), row("PO-2", "LAMP-1", currency="USD"), continuation)

    parsed = rules.orders_from_csv(text)

    assert [(one.ref, one.row, one.problems) for one in parsed] == [("PO-1", 2, []), ("PO-2", 3, [])]
    first, second = (one.order for one in parsed)
    assert first is not None and second is not None
    assert [(line.sku, line.quantity, str(line.unit_price)) for line in first.lines] == [
        ("MUG-1", 2, "10.00"),
        ("TEE-2", 3, "19.50"),
    ]
    assert (first.customer.id, first.shipping_address.city, first.currency) == ("C-1", "London", "EUR")
    assert (second.currency, second.customer.phone) == ("USD", "")


def test_each_bad_cell_is_named_by_its_row_and_column() -> None:
    text = csv_of(
        row("PO-1", "MUG-1"),
        row("PO-1", "MUG-2", quantity="two"),
        row("PO-2", "LAMP-1", ship_country="gb"),
        row("PO-3", "LAMP-1"),
        row("PO-3", "LAMP-2", customer_id="C-2"),
        row("PO-4", "LAMP-1", quantity="-1"),
    )

    parsed = rules.orders_from_csv(text)

    assert [one.order is None for one in parsed] == [True, True, True, True]
    problems = rules.problems_of(parsed)
    assert [(problem.row, problem.field) for problem in problems] == [
        (3, "quantity"),
        (4, "ship_country"),
        (6, "customer_id"),
        (7, "quantity"),
    ]
    assert problems[2].message == "differs from row 5 of the same external_ref"
    # A number out of range is named as such, not as text.
    assert "greater than or equal to 1" in problems[3].message


def test_a_file_with_unknown_or_missing_columns_is_refused_as_a_whole() -> None:
    header = HEADER.replace("unit_price", "price")

    with pytest.raises(rules.ImportRefused) as refused:
        rules.orders_from_csv(csv_of("x", header=header))

    assert [(problem.row, problem.field) for problem in refused.value.problems] == [(1, "price"), (1, "unit_price")]


def test_a_row_with_too_few_cells_or_no_external_ref_is_refused_as_a_whole() -> None:
    with pytest.raises(rules.ImportRefused) as refused:
        rules.orders_from_csv(csv_of(row("PO-1", "MUG-1"), "PO-2,C-1", row("", "MUG-1")))

    assert refused.value.problems == [
        RowProblem(row=3, field="row", message=f"2 cells where the header has {len(rules.CSV_COLUMNS)}"),
        RowProblem(row=4, field="external_ref", message="required"),
    ]


def test_json_orders_are_validated_one_by_one_and_a_repeated_external_ref_is_a_problem() -> None:
    good = {**order_body(), "external_ref": "PO-1"}
    bad = {**order_body(lines=[{"sku": "MUG-1", "quantity": 0, "unit_price": "1.00"}]), "external_ref": "PO-2"}
    again = {**order_body(), "external_ref": "PO-1"}

    parsed = rules.orders_from_json([good, bad, again])

    assert parsed[0].order is not None
    assert [(problem.row, problem.field) for problem in rules.problems_of(parsed)] == [
        (2, "lines.0.quantity"),
        (3, "external_ref"),
    ]
    assert rules.without_ref(parsed[0].order).model_dump().keys() == order_body().keys() | {
        "currency",
        "backorder_policy",
    }


def test_more_than_a_thousand_orders_are_refused_before_any_is_read() -> None:
    rows = [row(f"PO-{n}", "MUG-1") for n in range(MAX_JOB_ITEMS + 1)]

    with pytest.raises(rules.ImportRefused) as refused:
        rules.orders_from_csv(csv_of(*rows))

    assert refused.value.problems[0].message == "more than 1000 orders; split the import"


def test_a_page_cursor_gives_back_its_offset_and_a_made_up_one_is_refused() -> None:
    assert rules.decode_page_cursor(rules.encode_page_cursor(300)) == 300
    for made_up in ("nonsense", rules.encode_page_cursor(MAX_JOB_ITEMS + 1)):
        with pytest.raises(rules.InvalidPageCursor):
            rules.decode_page_cursor(made_up)
