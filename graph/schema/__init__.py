"""The GraphQL schema assembly; `python -m graph.schema` prints the SDL (schema.graphql)."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from graph.schema.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from graph.schema.execution import FastLeafExecutionContext
from graph.schema.extensions import PublicErrors
from graph.schema.job_operations import JobMutation, JobQuery
from graph.schema.mutation import Mutation as CoreMutation
from graph.schema.query import Query as CoreQuery
from graph.schema.registry import RegistryMutation, RegistryQuery
from graph.schema.subscription import Subscription

Query = merge_types("Query", (CoreQuery, JobQuery, RegistryQuery))
Mutation = merge_types("Mutation", (CoreMutation, JobMutation, RegistryMutation))


class Schema(strawberry.Schema):
    def process_errors(self, errors: list[Any], execution_context: ExecutionContext | None = None) -> None:
        # PublicErrors logs what needs logging (with the request id); user errors are not noise.
        return None


def build_schema() -> Schema:
    return Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[ValidationError, NotFoundError, PermissionDeniedError, ConflictError],
        # Parsing and validating the same documents again and again is pure waste.
        extensions=[PublicErrors, lambda: ParserCache(maxsize=512), lambda: ValidationCache(maxsize=512)],
        # Plain scalar and enum fields skip graphql-core's per-field machinery (~4,100 fields a page).
        execution_context_class=FastLeafExecutionContext,
    )


schema = build_schema()
