"""Every table of the platform; importing this module fills ``SQLModel.metadata``."""

from domain.models.job import Job, Step
from domain.models.organization import Organization, Team
from domain.models.registry import (
    Module,
    ModuleVersion,
    Provider,
    ProviderPlatform,
    ProviderVersion,
    SigningKey,
)
from domain.models.schedule import Schedule
from domain.models.state import StateLock, StateOutput, StateVersion
from domain.models.template import Template
from domain.models.token import AccessToken
from domain.models.workspace import ConfigurationVersion, Variable, Workspace

__all__ = [
    "AccessToken",
    "ConfigurationVersion",
    "Job",
    "Module",
    "ModuleVersion",
    "Organization",
    "Provider",
    "ProviderPlatform",
    "ProviderVersion",
    "Schedule",
    "SigningKey",
    "StateLock",
    "StateOutput",
    "StateVersion",
    "Step",
    "Team",
    "Template",
    "Variable",
    "Workspace",
]
