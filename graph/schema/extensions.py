"""Errors of queries: domain errors keep their message and a code; anything else is masked
and logged with the request id, so a stack trace or a secret never reaches a client."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from domain.errors import (
    Conflict,
    DomainError,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)

log = logging.getLogger("terrakube.graphql")

CODES: dict[type[DomainError], str] = {
    ValidationFailed: "VALIDATION",
    NotFound: "NOT_FOUND",
    PermissionDenied: "PERMISSION_DENIED",
    Conflict: "CONFLICT",
}


def _code(exc: DomainError) -> str:
    return next((code for cls, code in CODES.items() if isinstance(exc, cls)), "BAD_REQUEST")


def _subscription_over_http(error: GraphQLError) -> GraphQLError:
    """A subscription sent as a plain HTTP request has nowhere to stream to: say so plainly."""
    if isinstance(error.original_error, TypeError) and "Subscription." in error.message:
        return GraphQLError(
            "subscriptions run over a graphql-transport-ws websocket at /graphql "
            "(or over HTTP with `Accept: multipart/mixed`)",
            nodes=error.nodes,
            path=error.path,
            extensions={"code": "BAD_REQUEST"},
        )
    return error


class PublicErrors(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is None or not result.errors:
            return
        request_id = getattr(self.execution_context.context, "request_id", "-")
        if self.execution_context.operation_type is OperationType.SUBSCRIPTION:
            result.errors = [_subscription_over_http(error) for error in result.errors]
        result.errors = [self._public(error, request_id) for error in result.errors]

    @staticmethod
    def _public(error: GraphQLError, request_id: str) -> GraphQLError:
        original = error.original_error
        if original is None or isinstance(original, GraphQLError):
            return error  # a syntax or validation error of the document: safe and useful as is
        if isinstance(original, DomainError):
            extensions: dict[str, Any] = {"code": _code(original)}
            if isinstance(original, ValidationFailed):
                extensions["field"] = original.field
            return GraphQLError(original.message, nodes=error.nodes, path=error.path, extensions=extensions)
        log.error("unexpected error in GraphQL request %s at %s", request_id, error.path, exc_info=original)
        return GraphQLError(
            f"Unexpected error (request id {request_id}).",
            nodes=error.nodes,
            path=error.path,
            extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
        )
