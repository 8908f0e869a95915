"""The figures of each drill, printed as it ends, and the summary table of the whole run."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Figures:
    scenario: str
    submitted: int
    completed: int
    lost: int
    unexpected: int
    duplicated: int
    balanced: bool
    seconds: float
    # What happened on the way, in a few words each: faults that struck, retries, statuses.
    details: dict[str, object] = field(default_factory=dict)

    def lines(self) -> list[str]:
        books = "balanced" if self.balanced else "NOT BALANCED"
        head = (
            f"{self.scenario}: {self.submitted} submitted, {self.completed} completed, {self.lost} lost, "
            f"{self.unexpected} unexpected, {self.duplicated} duplicated effects, books {books}, {self.seconds:.0f} s"
        )
        return [head, *(f"    {name}: {value}" for name, value in self.details.items())]


COLUMNS = ("scenario", "submitted", "completed", "lost", "unexpected", "duplicated effects", "books", "seconds")


def summary_table(rows: list[Figures]) -> str:
    """One line per drill and a total, as plain text columns."""
    total = Figures(
        scenario="total",
        submitted=sum(row.submitted for row in rows),
        completed=sum(row.completed for row in rows),
        lost=sum(row.lost for row in rows),
        unexpected=sum(row.unexpected for row in rows),
        duplicated=sum(row.duplicated for row in rows),
        balanced=all(row.balanced for row in rows),
        seconds=sum(row.seconds for row in rows),
    )
    cells = [_cells(row) for row in [*rows, total]]
    widths = [max(len(text) for text in column) for column in zip(COLUMNS, *cells, strict=True)]

    def line(texts: tuple[str, ...]) -> str:
        first, *numbers = texts
        return "  ".join([first.ljust(widths[0]), *(t.rjust(w) for t, w in zip(numbers, widths[1:], strict=True))])

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(COLUMNS), rule, *(line(row) for row in cells[:-1]), rule, line(cells[-1])])


def _cells(row: Figures) -> tuple[str, ...]:
    return (
        row.scenario,
        str(row.submitted),
        str(row.completed),
        str(row.lost),
        str(row.unexpected),
        str(row.duplicated),
        "balanced" if row.balanced else "NOT BALANCED",
        f"{row.seconds:.0f}",
    )
