"""Keyset pagination behind the GraphQL Relay connections; cursors are opaque strings."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import tuple_
from sqlalchemy.sql import ColumnElement, Select

from domain.errors import ValidationFailed

T = TypeVar("T")
MAX_PAGE = 100
DEFAULT_PAGE = 20


@dataclass(frozen=True)
class PageRequest:
    first: int = DEFAULT_PAGE
    after: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.first <= MAX_PAGE:
            raise ValidationFailed("first", f"first must be between 0 and {MAX_PAGE}")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    cursors: Sequence[str]
    has_next_page: bool
    has_previous_page: bool


def encode_cursor(sort_value: Any, row_id: uuid.UUID) -> str:
    raw = json.dumps([sort_value, str(row_id)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[Any, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        sort_value, row_id = json.loads(base64.urlsafe_b64decode(padded))
        return sort_value, uuid.UUID(row_id)
    except (ValueError, TypeError):
        raise ValidationFailed("after", "after is not a cursor this API returned") from None


async def paginate_by_name(
    session: Any, query: Select[Any], name_column: Any, id_column: Any, page: PageRequest
) -> Page[Any]:
    """Order by (name, id) and fetch one extra row to learn whether a next page exists."""
    if page.after is not None:
        name, row_id = decode_cursor(page.after)
        if not isinstance(name, str):
            raise ValidationFailed("after", "after is not a cursor this API returned")
        after: ColumnElement[bool] = tuple_(name_column, id_column) > tuple_(name, row_id)
        query = query.where(after)
    query = query.order_by(name_column, id_column).limit(page.first + 1)
    rows = list((await session.exec(query)).all())
    has_next = len(rows) > page.first
    rows = rows[: page.first]
    cursors = [encode_cursor(getattr(r, name_column.key), r.id) for r in rows]
    return Page(rows, cursors, has_next_page=has_next, has_previous_page=page.after is not None)
