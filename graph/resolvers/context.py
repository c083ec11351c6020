"""Per-request GraphQL context: the platform, the acting principal and the DataLoaders."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from strawberry.dataloader import DataLoader

from domain.access import Actor
from domain.models import Team, Template, Variable
from domain.services import Platform
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

    def __post_init__(self) -> None:
        self.variables = _loader(self.platform, variables_by_workspace)
        self.teams = _loader(self.platform, teams_by_organization)
        self.templates = _loader(self.platform, templates_by_organization)


@dataclass
class Context:
    platform: Platform
    actor: Actor
    request_id: str
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        self.loaders = Loaders(self.platform)


def parse_id(value: str, field_name: str = "id") -> uuid.UUID:
    from domain.errors import ValidationFailed

    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ValidationFailed(field_name, f"{field_name} is not a valid id") from None
