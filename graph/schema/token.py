from __future__ import annotations

from datetime import datetime

import strawberry

from domain.models import AccessToken as AccessTokenRow
from domain.principal import Principal


@strawberry.type(
    description="A personal or team access token; its secret is shown only when it is created. "
    "`kind`: `personal`, `team` or `admin`."
)
class AccessToken:
    id: strawberry.ID
    kind: str
    description: str
    created_at: datetime
    expires_at: datetime

    @classmethod
    def from_row(cls, row: AccessTokenRow) -> AccessToken:
        return cls(
            id=strawberry.ID(str(row.id)),
            kind=row.kind,
            description=row.description,
            created_at=row.created_at,
            expires_at=row.expires_at,
        )


@strawberry.type(description="A token just created: `token` is the secret, returned only this once.")
class NewAccessToken:
    token: str
    access_token: AccessToken


@strawberry.type(description="The caller, as the platform sees them.")
class Me:
    name: str
    email: str | None
    groups: list[str]
    is_admin: bool

    @classmethod
    def from_principal(cls, principal: Principal) -> Me:
        return cls(
            name=principal.name,
            email=principal.email,
            groups=sorted(principal.groups),
            is_admin=principal.is_admin,
        )
