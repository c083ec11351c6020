"""Builds the configured `BlobStore` from the platform's storage settings.

`storage` imports nothing of ours, so this takes any object with the `storage_*` attributes of
the `Settings` class (read by name) instead of importing it. A missing or contradictory
setting is a `StorageError` whose message names the variable to fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import BlobStore, StorageError

__all__ = ["BACKENDS", "open_store"]

BACKENDS = ("local", "s3", "azure", "gcs")
_MiB = 1024 * 1024


def _get(settings: Any, name: str, default: Any = None) -> Any:
    value = getattr(settings, name, default)
    # An empty environment variable means "not set", not "the empty name".
    return default if isinstance(value, str) and not value.strip() else value


def _require(settings: Any, name: str, backend: str) -> str:
    value = _get(settings, name)
    if not value:
        raise StorageError(f"TERRAKUBE_{name.upper()} is required when TERRAKUBE_STORAGE_BACKEND={backend}")
    return str(value)


def open_store(settings: Any) -> BlobStore:
    """The store the settings select. No I/O: call `check()` to find out whether it works."""
    backend = str(_get(settings, "storage_backend", "local") or "local").lower()
    if backend == "local":
        from .local import LocalBlobStore

        path = _get(settings, "effective_storage_path") or _get(settings, "storage_local_path")
        if not path:
            raise StorageError("TERRAKUBE_STORAGE_LOCAL_PATH is required when TERRAKUBE_STORAGE_BACKEND=local")
        return LocalBlobStore(Path(path))
    # Each cloud SDK is imported only when chosen: they are heavy and pull in their HTTP stacks.
    if backend == "s3":
        from .s3 import S3BlobStore

        key_id = _get(settings, "storage_s3_access_key_id")
        secret = _get(settings, "storage_s3_secret_access_key")
        if bool(key_id) != bool(secret):
            raise StorageError(
                "set both TERRAKUBE_STORAGE_S3_ACCESS_KEY_ID and TERRAKUBE_STORAGE_S3_SECRET_ACCESS_KEY, "
                "or neither (to use the standard AWS credential chain)"
            )
        return S3BlobStore(
            _require(settings, "storage_s3_bucket", backend),
            region=_get(settings, "storage_s3_region"),
            endpoint_url=_get(settings, "storage_s3_endpoint_url"),
            path_style=bool(_get(settings, "storage_s3_path_style", False)),
            access_key_id=key_id,
            secret_access_key=secret,
            part_size=int(_get(settings, "storage_s3_part_size_mb", 8)) * _MiB,
        )
    if backend == "azure":
        from .azure import AzureBlobStore

        connection_string = _get(settings, "storage_azure_connection_string")
        account = _get(settings, "storage_azure_account_name")
        key = _get(settings, "storage_azure_account_key")
        if not connection_string and not (account and key):
            raise StorageError(
                "TERRAKUBE_STORAGE_BACKEND=azure needs TERRAKUBE_STORAGE_AZURE_CONNECTION_STRING, or "
                "TERRAKUBE_STORAGE_AZURE_ACCOUNT_NAME and TERRAKUBE_STORAGE_AZURE_ACCOUNT_KEY"
            )
        return AzureBlobStore(
            _require(settings, "storage_azure_container", backend),
            connection_string=connection_string,
            account_name=account,
            account_key=key,
            endpoint=_get(settings, "storage_azure_endpoint"),
            block_size=int(_get(settings, "storage_azure_block_size_mb", 4)) * _MiB,
        )
    if backend == "gcs":
        from .gcs import GcsBlobStore

        credentials = _get(settings, "storage_gcs_credentials_file")
        return GcsBlobStore(
            _require(settings, "storage_gcs_bucket", backend),
            credentials_file=str(credentials) if credentials else None,
            endpoint=_get(settings, "storage_gcs_endpoint"),
        )
    raise StorageError(f"TERRAKUBE_STORAGE_BACKEND={backend!r} is not one of {', '.join(BACKENDS)}")
