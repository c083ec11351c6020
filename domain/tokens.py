"""The platform's own JWTs (personal access tokens and job tokens), signed with HS256."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from jose import jwt
from jose.exceptions import JOSEError

from domain.crypto import derive_key

PLATFORM_ISSUER = "urn:terrakube:platform"
PLATFORM_ALGORITHM = "HS256"
JOB_TOKEN_TYPE = "job"


class InvalidPlatformToken(Exception):
    pass


class TokenSigner:
    def __init__(self, secret_key: str) -> None:
        self._key = derive_key(secret_key, "terrakube/token-signing").hex()

    def sign(
        self, *, token_id: uuid.UUID, subject: str, kind: str, issued_at: datetime, expires_at: datetime
    ) -> str:
        claims = {
            "iss": PLATFORM_ISSUER,
            "sub": subject,
            "jti": str(token_id),
            "typ": kind,
            "iat": int(issued_at.timestamp()),
            "exp": int(expires_at.timestamp()),
        }
        return jwt.encode(claims, self._key, algorithm=PLATFORM_ALGORITHM)

    def sign_job(
        self, *, job_id: uuid.UUID, workspace_id: uuid.UUID, organization_id: uuid.UUID, expires_at: datetime
    ) -> str:
        """A token for one job's executor: state backend and registry calls of that workspace."""
        now = datetime.now(expires_at.tzinfo)
        claims = {
            "iss": PLATFORM_ISSUER,
            "sub": f"job:{job_id}",
            "jti": str(job_id),
            "typ": JOB_TOKEN_TYPE,
            "org": str(organization_id),
            "ws": str(workspace_id),
            "iat": int(now.timestamp()),
            "exp": int(expires_at.timestamp()),
        }
        return jwt.encode(claims, self._key, algorithm=PLATFORM_ALGORITHM)

    def verify(self, token: str) -> dict[str, Any]:
        """Signature, issuer and expiry; the caller still checks revocation by ``jti``."""
        try:
            return jwt.decode(
                token,
                self._key,
                algorithms=[PLATFORM_ALGORITHM],
                issuer=PLATFORM_ISSUER,
                options={"verify_aud": False, "require_exp": True, "require_jti": True},
            )
        except JOSEError as exc:
            raise InvalidPlatformToken(str(exc)) from None
