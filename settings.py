"""The one reader of the environment: every setting has the prefix ``TERRAKUBE_``."""

from __future__ import annotations

import re
import secrets
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Values people copy from examples; a production server must never run with one of them.
PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "change-me", "changethis", "secret", "password", "terrakube", "placeholder"}
)
MIN_SECRET_LENGTH = 32
# An entry of TERRAKUBE_EXECUTOR_PASS_ENV: a variable name, or a prefix ending in `*`.
_PASS_ENV_ENTRY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\*?|\*")


class Mode(StrEnum):
    embedded = "embedded"
    production = "production"


class StorageBackend(StrEnum):
    local = "local"
    s3 = "s3"
    azure = "azure"
    gcs = "gcs"


class ConfigurationError(Exception):
    """A setting is missing or wrong; the message names the variable to fix."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TERRAKUBE_", extra="ignore")

    mode: Mode = Mode.embedded
    data_dir: Path = Field(default_factory=lambda: Path.home() / ".terrakube")
    database_url: str | None = None
    secret_key: str | None = None
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Prefix for every Redis key of this installation (several installations may share a Redis).
    redis_prefix: str = "terrakube"

    storage_backend: StorageBackend = StorageBackend.local
    storage_local_path: Path | None = None
    # s3: AWS or any S3-compatible server (endpoint + path style for MinIO, Ceph, SeaweedFS).
    # Without an access key the standard AWS credential chain applies (env, profile, IAM role).
    storage_s3_bucket: str | None = None
    storage_s3_region: str | None = None
    storage_s3_endpoint_url: str | None = None
    storage_s3_path_style: bool = False
    storage_s3_access_key_id: str | None = None
    storage_s3_secret_access_key: str | None = None
    # Memory per upload is bounded by one part; S3 needs at least 5 MB.
    storage_s3_part_size_mb: int = Field(default=8, ge=5, le=5 * 1024)
    # azure: a connection string, or account name + key (+ endpoint, e.g. for Azurite).
    storage_azure_container: str | None = None
    storage_azure_connection_string: str | None = None
    storage_azure_account_name: str | None = None
    storage_azure_account_key: str | None = None
    storage_azure_endpoint: str | None = None
    storage_azure_block_size_mb: int = Field(default=4, ge=1, le=4000)
    # gcs: without a credentials file, Google's application default credentials apply.
    storage_gcs_bucket: str | None = None
    storage_gcs_credentials_file: Path | None = None
    storage_gcs_endpoint: str | None = None
    # A blob no row names for this long (state, plans, logs, configurations, registry files) is an
    # orphan: a crashed write's, or a deletion's whose storage call failed.
    storage_orphan_minutes: int = Field(default=60, ge=1)
    # How often the orphan sweep lists the whole store: every listing costs requests (and money on a
    # cloud) in proportion to the number of objects.
    storage_orphan_sweep_minutes: int = Field(default=30, ge=1)

    public_url: str | None = None
    # Browser origins allowed to open GraphQL websockets besides the server's own.
    allowed_origins: list[str] = Field(default_factory=list)
    admin_group: str = "TERRAKUBE_ADMIN"

    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    # Defaults to the jwks_uri of the issuer's discovery document.
    oidc_jwks_url: str | None = None
    oidc_groups_claim: str = "groups"
    oidc_jwks_cache_seconds: int = 300

    access_token_max_days: int = 365
    # A process remembers a token's authentication and its teams' access until a token, team or
    # organization changes (announced over Redis between processes), and at most this long
    # (0 = ask the database on every request).
    access_cache_seconds: float = Field(default=60.0, ge=0)
    worker_concurrency: int = 4
    step_timeout_seconds: int = 6 * 3600
    # A running step's worker reports every heartbeat_seconds; silent for heartbeat_ttl_seconds
    # means lost. The sweep (the safety net behind event-driven dispatch) runs every sweep_seconds
    # (the arq worker rounds it down to a divisor of a minute, or of an hour from 60 s up).
    heartbeat_seconds: float = 5.0
    heartbeat_ttl_seconds: float = 45.0
    sweep_seconds: float = 10.0
    # How often an idle arq worker looks for new work (arq's own default, 0.5 s, adds up to a
    # second to every step's dispatch).
    queue_poll_seconds: float = 0.05
    max_configuration_bytes: int = 100 * 1024 * 1024
    # Where the executor finds terraform and keeps its scratch directories.
    terraform_bin: str = "terraform"
    work_dir: Path | None = None
    # Variables of the worker's environment that terraform and users' scripts also get, beyond
    # the executor's short allow-list (PATH, HOME, locale, proxies, CAs): comma-separated names,
    # `PREFIX*` for prefixes. Everything else stays out: it may be the platform's own credentials.
    # NoDecode: a comma-separated string, not the JSON list pydantic-settings expects by default.
    executor_pass_env: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Whether workspaces and modules may take their code from `file://` git sources, which read
    # repositories on the machine that runs the API or the worker: any organization could read
    # any repository there. Unset: allowed in embedded mode (one machine, its owner), refused in
    # production.
    allow_file_sources: bool | None = None
    database_pool_size: int = 10
    # One line per HTTP request on stdout (method, path without query, status, duration, request id).
    access_log: bool = True
    # API processes `terrakube serve` runs on its port (the --workers flag overrides it).
    serve_workers: int = Field(default=1, ge=1, le=64)

    # Private registry. Versions of modules are re-read from git every module_refresh_seconds
    # (0 = only on create and refreshModule); signed download links live registry_url_ttl_seconds.
    module_refresh_seconds: float = 900.0
    module_git_timeout_seconds: float = 300.0
    registry_url_ttl_seconds: int = 300
    registry_download_flush_seconds: float = 1.0
    # How long a process reuses the registry's answers (versions lists, download lookups).
    registry_cache_seconds: float = 5.0
    max_provider_bytes: int = 512 * 1024 * 1024
    # HTTPS for `serve`/`up` (the --tls-cert/--tls-key flags set them too).
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None

    @field_validator("executor_pass_env", mode="before")
    @classmethod
    def _split_pass_env(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("executor_pass_env")
    @classmethod
    def _check_pass_env(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            check_pass_env_entry(entry)
        return entries

    @model_validator(mode="after")
    def _production_requirements(self) -> Settings:
        if self.mode is Mode.production:
            if not self.database_url:
                raise ValueError(
                    "TERRAKUBE_DATABASE_URL is required in production mode "
                    "(e.g. postgresql+asyncpg://user:pass@host:5432/terrakube)"
                )
            key = (self.secret_key or "").strip()
            if key.lower() in PLACEHOLDER_SECRETS or len(key) < MIN_SECRET_LENGTH:
                raise ValueError(
                    "TERRAKUBE_SECRET_KEY must be set to a random value of at least "
                    f"{MIN_SECRET_LENGTH} characters in production mode "
                    "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
                )
        return self

    # -- derived values -------------------------------------------------------------

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'terrakube.db'}"

    @property
    def file_sources_allowed(self) -> bool:
        if self.allow_file_sources is not None:
            return self.allow_file_sources
        return self.mode is Mode.embedded

    @property
    def effective_work_dir(self) -> Path:
        return self.work_dir or (self.data_dir / "work")

    @property
    def effective_storage_path(self) -> Path:
        return self.storage_local_path or (self.data_dir / "storage")


def check_pass_env_entry(entry: str) -> None:
    """Refuse an entry of the executor's pass-list that is malformed or could reach the worker's
    own settings: TERRAKUBE_ variables hold the secret key and the database URL, and a user's
    script could print them. Read in any case by pydantic-settings, so compared upper-cased."""
    if not _PASS_ENV_ENTRY.fullmatch(entry):
        raise ValueError(
            f"TERRAKUBE_EXECUTOR_PASS_ENV: {entry!r} is neither a variable name nor a prefix ending in '*'"
        )
    upper = entry.upper()
    prefix = upper.removesuffix("*") if upper.endswith("*") else None
    if upper.startswith("TERRAKUBE_") or (prefix is not None and "TERRAKUBE_".startswith(prefix)):
        raise ValueError(
            f"TERRAKUBE_EXECUTOR_PASS_ENV: {entry!r} would pass the worker's own TERRAKUBE_ settings "
            "(secret key, database URL) to users' runs; they can never be passed"
        )


def load_settings(**overrides: object) -> Settings:
    """Build the settings, turning validation failures into one readable message."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        messages = "; ".join(str(err["msg"]).removeprefix("Value error, ") for err in exc.errors())
        raise ConfigurationError(messages) from None


def ensure_embedded_secret(settings: Settings) -> Settings:
    """In embedded mode, keep a generated secret key in the data dir so restarts keep tokens."""
    if settings.secret_key:
        return settings
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    key_file = settings.data_dir / "secret-key"
    if not key_file.exists():
        key_file.touch(mode=0o600)
        key_file.write_text(secrets.token_urlsafe(48))
    return settings.model_copy(update={"secret_key": key_file.read_text().strip()})
