"""The one domain error tree; each surface (GraphQL, HTTP) maps it in one place."""

from __future__ import annotations


class DomainError(Exception):
    """A failure the caller caused and can act on. Its message is safe to show."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationFailed(DomainError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class TooLarge(ValidationFailed):
    """An upload over its size limit: HTTP surfaces answer 413."""


class NotFound(DomainError):
    pass


class PermissionDenied(DomainError):
    pass


class Conflict(DomainError):
    pass


class Unauthenticated(DomainError):
    """No valid credentials: the surface answers 401."""
