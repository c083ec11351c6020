"""The GraphQL schema assembly; `python -m graph.schema` prints the SDL (schema.graphql)."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from graph.schema.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from graph.schema.extensions import PublicErrors
from graph.schema.job_operations import JobMutation, JobQuery
from graph.schema.mutation import Mutation as CoreMutation
from graph.schema.query import Query as CoreQuery

Query = merge_types("Query", (CoreQuery, JobQuery))
Mutation = merge_types("Mutation", (CoreMutation, JobMutation))


class Schema(strawberry.Schema):
    def process_errors(self, errors: list[Any], execution_context: ExecutionContext | None = None) -> None:
        # PublicErrors logs what needs logging (with the request id); user errors are not noise.
        return None


def build_schema() -> Schema:
    return Schema(
        query=Query,
        mutation=Mutation,
        types=[ValidationError, NotFoundError, PermissionDeniedError, ConflictError],
        extensions=[PublicErrors],
    )


schema = build_schema()
