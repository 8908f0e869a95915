"""Periods and buckets in a time zone, as UTC instants the database compares order times with.

A day bucket runs from local midnight to the next, a week bucket from Monday's local midnight; a
day that a daylight-saving change makes 23 or 25 hours long is that long here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class Bucket(StrEnum):
    DAY = "day"
    WEEK = "week"


class UnknownTimeZone(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown time zone {name!r}: an IANA name such as UTC or Europe/Amsterdam")


@dataclass(frozen=True)
class Span:
    """A run of local days, named by `label` (its first day, or a week's Monday): UTC instants from `start`
    (inclusive) to `end` (exclusive)."""

    label: date
    start: datetime
    end: datetime


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UnknownTimeZone(name) from None


def midnight(day: date, tz: ZoneInfo) -> datetime:
    """The UTC instant of the local midnight that starts `day`."""
    return datetime.combine(day, time.min, tzinfo=tz).astimezone(UTC)


def period(first: date, last: date, tz: ZoneInfo) -> Span:
    return Span(label=first, start=midnight(first, tz), end=midnight(last + timedelta(days=1), tz))


def previous(first: date, last: date) -> tuple[date, date]:
    """The period of equal length just before `first`..`last`."""
    days = (last - first).days + 1
    return first - timedelta(days=days), first - timedelta(days=1)


def buckets(first: date, last: date, tz: ZoneInfo, bucket: Bucket) -> list[Span]:
    """The day or week buckets covering `first`..`last`; a week is labelled by its Monday, clipped to the period."""
    spans = []
    day = first
    while day <= last:
        if bucket == Bucket.DAY:
            label, next_day = day, day + timedelta(days=1)
        else:
            label = day - timedelta(days=day.weekday())
            next_day = label + timedelta(days=7)
        end_day = min(next_day, last + timedelta(days=1))
        spans.append(Span(label=label, start=midnight(day, tz), end=midnight(end_day, tz)))
        day = end_day
    return spans
