"""The typed errors of every mutation payload, and the one place domain errors become them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import strawberry

from domain.errors import Conflict, NotFound, PermissionDenied, ValidationFailed

T = TypeVar("T")
R = TypeVar("R")


@strawberry.interface(description="Every error a caller can cause and fix.")
class Error:
    message: str


@strawberry.type(description="An input value is not acceptable; `field` names it.")
class ValidationError(Error):
    field: str


@strawberry.type(description="The object does not exist, or the caller may not see it.")
class NotFoundError(Error):
    pass


@strawberry.type(description="The caller lacks the permission the action needs.")
class PermissionDeniedError(Error):
    pass


@strawberry.type(description="The action clashes with the current state (a duplicate name, a held lock).")
class ConflictError(Error):
    pass


@strawberry.type(description="The id of an object a mutation deleted.")
class Deleted:
    id: strawberry.ID


UserError = ValidationError | NotFoundError | PermissionDeniedError | ConflictError


async def payload(call: Callable[[], Awaitable[T]], wrap: Callable[[T], R]) -> R | UserError:
    """Run a domain call; a domain error becomes the matching typed error (nothing was written)."""
    try:
        result = await call()
    except ValidationFailed as exc:
        return ValidationError(message=exc.message, field=exc.field)
    except NotFound as exc:
        return NotFoundError(message=exc.message)
    except PermissionDenied as exc:
        return PermissionDeniedError(message=exc.message)
    except Conflict as exc:
        return ConflictError(message=exc.message)
    return wrap(result)
