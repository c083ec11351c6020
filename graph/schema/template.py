from __future__ import annotations

from datetime import datetime

import strawberry

from domain.models import Template as TemplateRow


@strawberry.type(description="A named flow written in TCL.")
class Template:
    id: strawberry.ID
    name: str
    description: str
    tcl: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: TemplateRow) -> Template:
        return cls(
            id=strawberry.ID(str(row.id)),
            name=row.name,
            description=row.description,
            tcl=row.tcl,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )
