"""The HTTP status of each domain error, for every HTTP surface (state backend, configuration
upload, registry); each surface only shapes the body its client reads."""

from __future__ import annotations

from domain.errors import Conflict, DomainError, NotFound, PermissionDenied, TooLarge, Unauthenticated

# First match wins: TooLarge is a ValidationFailed, which (like any other DomainError) is a 400.
STATUSES: tuple[tuple[type[DomainError], int], ...] = (
    (Unauthenticated, 401),
    (PermissionDenied, 403),
    (NotFound, 404),
    (Conflict, 409),
    (TooLarge, 413),
)


def http_status(exc: DomainError) -> int:
    return next((status for cls, status in STATUSES if isinstance(exc, cls)), 400)
