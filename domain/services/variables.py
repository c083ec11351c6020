"""Workspace variables. Sensitive values are encrypted at rest and never read back."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from enum import StrEnum

from sqlmodel import SQLModel, select

from domain.access import Actor
from domain.errors import Conflict, NotFound, ValidationFailed
from domain.models import Variable, Workspace
from domain.models.types import utcnow
from domain.principal import Permission
from domain.services import Platform, unit_of_work
from domain.services.lookups import children_by_parent
from domain.validation import check_text

MAX_VALUE_BYTES = 256 * 1024
TERRAFORM_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$")
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class VariableCategory(StrEnum):
    terraform = "TERRAFORM"
    env = "ENV"


class VariableCreate(SQLModel):
    workspace_id: uuid.UUID
    key: str
    value: str = ""
    category: VariableCategory
    sensitive: bool = False
    hcl: bool = False
    description: str = ""


class VariableUpdate(SQLModel):
    key: str | None = None
    value: str | None = None
    sensitive: bool | None = None
    hcl: bool | None = None
    description: str | None = None


def _check_key(key: str, category: VariableCategory) -> None:
    pattern = TERRAFORM_KEY_RE if category is VariableCategory.terraform else ENV_KEY_RE
    if not pattern.fullmatch(key):
        kind = "a Terraform identifier" if category is VariableCategory.terraform else "an environment variable name"
        raise ValidationFailed("key", f"key must be {kind} of at most 128 characters (got {key[:100]!r})")


def _check_value(value: str) -> None:
    if len(value.encode()) > MAX_VALUE_BYTES:
        raise ValidationFailed("value", f"value must be at most {MAX_VALUE_BYTES} bytes")


def _check_hcl(hcl: bool, category: VariableCategory) -> None:
    if hcl and category is VariableCategory.env:
        raise ValidationFailed("hcl", "hcl applies to TERRAFORM variables only")


async def create_variable(platform: Platform, actor: Actor, data: VariableCreate) -> Variable:
    _check_key(data.key, data.category)
    _check_value(data.value)
    _check_hcl(data.hcl, data.category)
    check_text(data.description, "description", max_length=1024)
    conflict = f"a {data.category.value} variable named {data.key!r} already exists in this workspace"
    async with unit_of_work(platform, conflict) as session:
        ws = await _editable_workspace(session, actor, data.workspace_id)
        exists = (
            await session.exec(
                select(Variable.id).where(
                    Variable.workspace_id == ws.id,
                    Variable.category == data.category.value,
                    Variable.key == data.key,
                )
            )
        ).first()
        if exists is not None:
            raise Conflict(conflict)
        variable = Variable(
            workspace_id=ws.id,
            key=data.key,
            value=platform.box.encrypt(data.value) if data.sensitive else data.value,
            category=data.category.value,
            sensitive=data.sensitive,
            hcl=data.hcl,
            description=data.description,
        )
        session.add(variable)
    return variable


async def update_variable(
    platform: Platform, actor: Actor, variable_id: uuid.UUID, data: VariableUpdate
) -> Variable:
    if data.value is not None:
        _check_value(data.value)
    if data.description is not None:
        check_text(data.description, "description", max_length=1024)
    conflict = f"a variable named {data.key!r} already exists in this workspace"
    async with unit_of_work(platform, conflict) as session:
        variable = await session.get(Variable, variable_id, with_for_update=True)
        if variable is None:
            raise NotFound("variable not found")
        await _editable_workspace(session, actor, variable.workspace_id)
        category = VariableCategory(variable.category)
        if data.key is not None and data.key != variable.key:
            _check_key(data.key, category)
            clash = (
                await session.exec(
                    select(Variable.id).where(
                        Variable.workspace_id == variable.workspace_id,
                        Variable.category == variable.category,
                        Variable.key == data.key,
                    )
                )
            ).first()
            if clash is not None:
                raise Conflict(conflict)
            variable.key = data.key
        if data.sensitive is False and variable.sensitive:
            # Like Terraform Cloud: a secret once written stays write-only.
            raise ValidationFailed("sensitive", "a sensitive variable cannot be made non-sensitive")
        if data.hcl is not None:
            _check_hcl(data.hcl, category)
            variable.hcl = data.hcl
        if data.sensitive and not variable.sensitive:
            plain = data.value if data.value is not None else variable.value
            variable.value, variable.sensitive = platform.box.encrypt(plain), True
        elif data.value is not None:
            variable.value = platform.box.encrypt(data.value) if variable.sensitive else data.value
        if data.description is not None:
            variable.description = data.description
        variable.updated_at = utcnow()
        session.add(variable)
    return variable


async def delete_variable(platform: Platform, actor: Actor, variable_id: uuid.UUID) -> uuid.UUID:
    async with unit_of_work(platform, "variable is in use") as session:
        variable = await session.get(Variable, variable_id)
        if variable is None:
            raise NotFound("variable not found")
        await _editable_workspace(session, actor, variable.workspace_id)
        await session.delete(variable)
    return variable_id


def public_value(variable: Variable) -> str | None:
    """What any API may show: nothing at all for a sensitive variable."""
    return None if variable.sensitive else variable.value


async def variables_by_workspace(
    platform: Platform, workspace_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Variable]]:
    """Batch load for already-authorized workspaces (one statement for any number)."""
    return await children_by_parent(
        platform, Variable, Variable.workspace_id, workspace_ids, Variable.category, Variable.key
    )


async def _editable_workspace(session, actor: Actor, workspace_id: uuid.UUID) -> Workspace:  # type: ignore[no-untyped-def]
    ws = await session.get(Workspace, workspace_id)
    if ws is None:
        raise NotFound("workspace not found")
    await actor.require(session, ws.organization_id, Permission.manage_workspace, "workspace")
    return ws
