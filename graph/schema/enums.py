"""GraphQL enums (SCREAMING_SNAKE_CASE values) and their domain counterparts."""

from __future__ import annotations

from enum import Enum

import strawberry

from domain.principal import Role as DomainRole
from domain.services.variables import VariableCategory as DomainCategory
from domain.services.workspaces import ExecutionMode as DomainExecutionMode


@strawberry.enum(description="A team's role; every role but CUSTOM is a fixed set of permissions.")
class Role(Enum):
    ADMIN = "ADMIN"
    WRITE = "WRITE"
    PLAN = "PLAN"
    READ = "READ"
    CUSTOM = "CUSTOM"

    def to_domain(self) -> DomainRole:
        return DomainRole(self.value)


@strawberry.enum
class VariableCategory(Enum):
    TERRAFORM = "TERRAFORM"
    ENV = "ENV"

    def to_domain(self) -> DomainCategory:
        return DomainCategory(self.value)


@strawberry.enum(description="REMOTE runs on the platform's workers; LOCAL keeps only the state here.")
class ExecutionMode(Enum):
    REMOTE = "remote"
    LOCAL = "local"

    def to_domain(self) -> DomainExecutionMode:
        return DomainExecutionMode(self.value)
