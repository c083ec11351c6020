"""A graphql-core executor with a fast path for plain leaf fields.

A page of 100 workspaces with their variables is ~4,100 fields, and nearly all of them are scalars or
enums read from an attribute (Strawberry's "basic fields": no resolver, no permission class, no field
extension). For each of them graphql-core builds a resolve info tuple and a path, calls Strawberry's
resolver wrapper, checks the result for awaitability and walks `complete_value`, ~15 µs a field on a
slow machine. For those fields this executor reads the attribute and coerces it to the leaf type
directly, which is what that whole chain computes.

Anything else takes graphql-core's own path: fields with a resolver or arguments, objects and lists,
a null for a non-null field, a value the leaf type refuses, a getter that raises, and every field
while a middleware (a Strawberry extension with a `resolve` hook) is installed. So errors, their
messages and paths are graphql-core's. If graphql-core's executor does not have the shape this was
written against (graphql-core 3.3), the subclass overrides nothing.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

from graphql import GraphQLField, GraphQLObjectType, Undefined, is_leaf_type, is_non_null_type
from graphql.pyutils import Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter

try:
    from graphql.execution.executor import gather_with_cancel
except ImportError:  # pragma: no cover - another graphql-core: no fast path (see the end of this module)
    gather_with_cancel = None

log = logging.getLogger("terrakube.graphql")

# A leaf field's plan: read the value from the source, coerce it, and whether null is an error.
LeafPlan = tuple[Callable[[Any], Any], Callable[[Any], Any], bool]

_EXPECTED_EXECUTE_FIELDS = ("self", "parent_type", "source_value", "path", "grouped_field_set", "position_context")
_EXPECTED_EXECUTE_FIELD = ("self", "parent_type", "source", "field_details_list", "path", "position_context")


def _has_expected_shape(base: type) -> bool:
    try:
        fields = tuple(inspect.signature(base.execute_fields).parameters)  # type: ignore[attr-defined]
        field = tuple(inspect.signature(base.execute_field).parameters)  # type: ignore[attr-defined]
    except (AttributeError, TypeError, ValueError):
        return False
    return fields == _EXPECTED_EXECUTE_FIELDS and field == _EXPECTED_EXECUTE_FIELD


def _leaf_plan(field_def: GraphQLField) -> LeafPlan | None:
    """The plan for a Strawberry basic field of a scalar or enum type, else None."""
    resolve = field_def.resolve
    if resolve is None or not getattr(resolve, "_is_default", False) or field_def.args:
        return None
    non_null = is_non_null_type(field_def.type)
    leaf = field_def.type.of_type if non_null else field_def.type  # type: ignore[attr-defined]
    if not is_leaf_type(leaf):
        return None
    strawberry_field = (field_def.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    name = getattr(strawberry_field, "python_name", None)
    if name is not None and getattr(strawberry_field, "default_resolver", None) is getattr:

        def get(source: Any, name: str = name) -> Any:
            return getattr(source, name)
    else:  # a custom default resolver: call Strawberry's wrapper (it ignores info for basic fields)

        def get(source: Any) -> Any:
            return resolve(source, None)

    return get, leaf.coerce_output_value, non_null


class FastLeafExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context plus the leaf fast path (see the module docstring)."""

    # field definition id -> (field definition, plan or None); the definition is kept so its id stays unique.
    _plans: dict[int, tuple[GraphQLField, LeafPlan | None]] = {}

    @classmethod
    def _plan(cls, field_def: GraphQLField) -> LeafPlan | None:
        entry = cls._plans.get(id(field_def))
        if entry is None or entry[0] is not field_def:
            entry = (field_def, _leaf_plan(field_def))
            cls._plans[id(field_def)] = entry
        return entry[1]

    def _steps(self, parent_type: GraphQLObjectType, grouped_field_set: dict[str, Any]) -> list[tuple[str, Any, Any]]:
        """(response name, field details, leaf plan or None) per field; one list per selection set and
        request (graphql-core memoizes the grouped field set of a list's items, so the key repeats)."""
        try:
            cache = self._fast_steps
        except AttributeError:
            cache = self._fast_steps = {}
        key = (parent_type, id(grouped_field_set))
        entry = cache.get(key)
        if entry is not None:
            return entry[1]
        steps = []
        for response_name, field_details_list in grouped_field_set.items():
            node = field_details_list[0].node
            field_def = self.schema.get_field(parent_type, node.name.value)
            plan = self._plan(field_def) if field_def is not None and not node.arguments else None
            steps.append((response_name, field_details_list, plan))
        cache[key] = (grouped_field_set, steps)  # keeps the set alive, so its id is not reused
        return steps

    def execute_fields(  # type: ignore[override]
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Any,
        grouped_field_set: dict[str, Any],
        position_context: Any,
    ) -> Any:
        manager = self.middleware_manager  # Strawberry passes one per request, empty unless an extension has `resolve`
        if manager is not None and manager.middlewares:
            return super().execute_fields(parent_type, source_value, path, grouped_field_set, position_context)
        results: dict[str, Any] = {}
        is_awaitable = self.is_awaitable
        awaitable_fields: list[str] = []
        try:
            for response_name, field_details_list, plan in self._steps(parent_type, grouped_field_set):
                if plan is not None:
                    get, coerce, non_null = plan
                    try:
                        value = get(source_value)
                        if value is None:
                            if not non_null:
                                results[response_name] = None
                                continue
                        elif not isinstance(value, Exception):
                            coerced = coerce(value)
                            if coerced is not None and coerced is not Undefined:
                                results[response_name] = coerced
                                continue
                    except Exception:  # noqa: BLE001 - graphql-core's path below reports it
                        pass
                # graphql-core's own path, as in Executor.execute_fields
                field_path = Path(path, response_name, parent_type.name)
                result = self.execute_field(parent_type, source_value, field_details_list, field_path, position_context)
                if result is not Undefined:
                    results[response_name] = result
                    if is_awaitable(result):
                        awaitable_fields.append(response_name)
        except Exception:
            if awaitable_fields:
                self.settle_in_background([results[field] for field in awaitable_fields])
            raise
        if not awaitable_fields:
            return results
        return _gather_fields(results, awaitable_fields)


async def _gather_fields(results: dict[str, Any], awaitable_fields: list[str]) -> dict[str, Any]:
    if len(awaitable_fields) == 1:
        field = awaitable_fields[0]
        results[field] = await results[field]
        return results
    awaited = await gather_with_cancel(*(results[field] for field in awaitable_fields))
    results.update(zip(awaitable_fields, awaited, strict=True))
    return results


_FAST_PATH_ON = gather_with_cancel is not None and _has_expected_shape(StrawberryGraphQLCoreExecutionContext)
if not _FAST_PATH_ON:  # pragma: no cover - another graphql-core
    log.warning("graphql-core's executor changed shape: the GraphQL leaf fast path is off")
    del FastLeafExecutionContext.execute_fields
