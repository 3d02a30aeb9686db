"""Pieces every document shares: UTC timestamps at MongoDB's millisecond precision."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator

__all__ = ["UtcDatetime", "utcnow"]


def utcnow() -> datetime:
    """Now, in UTC, truncated to milliseconds: what the server stores is what we return."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _as_utc(value: datetime) -> datetime:
    # A client without tz_aware (e.g. an injected one) returns naive datetimes that are UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]
