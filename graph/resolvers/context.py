"""Per-request GraphQL context: the platform, the acting principal and the DataLoaders."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from strawberry.dataloader import DataLoader
from strawberry.types.nodes import SelectedField

from domain.access import Actor
from domain.live import Broker
from domain.models import (
    Job,
    ModuleVersion,
    ProviderPlatform,
    ProviderVersion,
    Schedule,
    SigningKey,
    StateLock,
    StateOutput,
    StateVersion,
    Step,
    Team,
    Template,
    Variable,
)
from domain.services import Platform
from domain.services.jobs import jobs_by_id, steps_by_job
from domain.services.modules import versions_by_module
from domain.services.providers import platforms_by_version, signing_keys_by_organization, versions_by_provider
from domain.services.schedules import schedules_by_workspace
from domain.services.state import (
    current_versions_by_workspace,
    locks_by_workspace,
    outputs_by_version,
    workspace_paths,
)
from domain.services.teams import teams_by_organization
from domain.services.templates import templates_by_organization
from domain.services.variables import variables_by_workspace


def _loader(platform: Platform, batch) -> DataLoader:  # type: ignore[no-untyped-def,type-arg]
    async def load(keys: list[uuid.UUID]) -> list[list]:  # type: ignore[type-arg]
        grouped = await batch(platform, keys)
        return [grouped[k] for k in keys]

    return DataLoader(load_fn=load)


@dataclass
class Loaders:
    """One loader per nested list: a list query costs the same statements for 10 or 100 parents."""

    platform: Platform
    variables: DataLoader[uuid.UUID, list[Variable]] = field(init=False)
    teams: DataLoader[uuid.UUID, list[Team]] = field(init=False)
    templates: DataLoader[uuid.UUID, list[Template]] = field(init=False)
    state_outputs: DataLoader[uuid.UUID, list[StateOutput]] = field(init=False)
    current_state_versions: DataLoader[uuid.UUID, StateVersion | None] = field(init=False)
    state_locks: DataLoader[uuid.UUID, StateLock | None] = field(init=False)
    workspace_paths: DataLoader[uuid.UUID, tuple[str, str] | None] = field(init=False)
    steps: DataLoader[uuid.UUID, list[Step]] = field(init=False)
    jobs: DataLoader[uuid.UUID, Job | None] = field(init=False)
    schedules: DataLoader[uuid.UUID, list[Schedule]] = field(init=False)
    module_versions: DataLoader[uuid.UUID, list[ModuleVersion]] = field(init=False)
    provider_versions: DataLoader[uuid.UUID, list[ProviderVersion]] = field(init=False)
    provider_platforms: DataLoader[uuid.UUID, list[ProviderPlatform]] = field(init=False)
    signing_keys: DataLoader[uuid.UUID, SigningKey | None] = field(init=False)

    def __post_init__(self) -> None:
        self.variables = _loader(self.platform, variables_by_workspace)
        self.teams = _loader(self.platform, teams_by_organization)
        self.templates = _loader(self.platform, templates_by_organization)
        self.state_outputs = _loader(self.platform, outputs_by_version)
        self.current_state_versions = _loader(self.platform, current_versions_by_workspace)
        self.state_locks = _loader(self.platform, locks_by_workspace)
        self.workspace_paths = _loader(self.platform, workspace_paths)
        self.steps = _loader(self.platform, steps_by_job)
        self.jobs = _loader(self.platform, jobs_by_id)
        self.schedules = _loader(self.platform, schedules_by_workspace)
        self.module_versions = _loader(self.platform, versions_by_module)
        self.provider_versions = _loader(self.platform, versions_by_provider)
        self.provider_platforms = _loader(self.platform, platforms_by_version)
        self.signing_keys = _loader(self.platform, signing_keys_by_organization)

    def release(self) -> None:
        """Drop every loaded row. graphql-core's executor holds the context in a reference cycle, so
        without this the rows of a big page (500 variables: ~2,300 objects) wait for a full collection."""
        for loader in vars(self).values():
            if isinstance(loader, DataLoader):
                loader.clear_all()
                loader.batch = None


@dataclass
class Context:
    platform: Platform
    actor: Actor
    request_id: str
    broker: Broker | None = None
    # Set by Strawberry from a websocket's connection_init payload.
    connection_params: dict[str, Any] | None = None
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        self.loaders = Loaders(self.platform)

    def release(self) -> None:
        """Called when the request (or websocket) is over: nothing resolves on this context any more."""
        self.loaders.release()


NOT_LOADED: Any = object()


def loaded(loader: DataLoader[Any, Any], key: Any) -> Any:
    """The value ``loader`` already holds for ``key``, or NOT_LOADED (not asked, pending or failed)."""
    future = loader.cache_map.get(key) if loader.cache else None
    if future is None or not future.done() or future.cancelled() or future.exception() is not None:
        return NOT_LOADED
    return future.result()


def selects(selections: Sequence[Any], *path: str) -> bool:
    """Whether a Strawberry selection (``info.selected_fields``) reaches ``path`` (field names, through
    fragments; directives are not evaluated, so a skipped field counts as selected)."""
    name, rest = path[0], path[1:]
    for selection in selections:
        if isinstance(selection, SelectedField):
            if selection.name == name and (not rest or selects(selection.selections, *rest)):
                return True
        elif selects(selection.selections, *path):  # a fragment spread or an inline fragment
            return True
    return False


def parse_id(value: str, field_name: str = "id") -> uuid.UUID:
    from domain.errors import ValidationFailed

    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ValidationFailed(field_name, f"{field_name} is not a valid id") from None
