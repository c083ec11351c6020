"""The `terrakube` command: up (embedded), serve (API), worker (arq), migrate."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

from settings import (
    ConfigurationError,
    Mode,
    Settings,
    ensure_embedded_secret,
    load_settings,
)


def _settings(mode: Mode | None, data_dir: str | None) -> Settings:
    overrides: dict[str, object] = {}
    if mode is not None:
        overrides["mode"] = mode
    if data_dir is not None:
        overrides["data_dir"] = Path(data_dir).expanduser().resolve()
    return load_settings(**overrides)


def _migrate(settings: Settings) -> None:
    import migrations

    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrations.upgrade(settings.effective_database_url)


async def _admin_token(settings: Settings) -> str:
    """Reuse the token in ``D/admin-token`` while it is valid; otherwise issue a new one."""
    from domain.authn import Authenticator
    from domain.errors import Unauthenticated
    from domain.services.access_tokens import issue_admin_token
    from wiring import open_platform

    token_file = settings.data_dir / "admin-token"
    platform = await open_platform(settings)
    try:
        if token_file.exists():
            token = token_file.read_text().strip()
            try:
                await Authenticator(platform).authenticate(token)
                return token
            except Unauthenticated:
                pass
        new = await issue_admin_token(platform)
        token_file.touch(mode=0o600)
        token_file.write_text(new.secret + "\n")
        return new.secret
    finally:
        await platform.blobs.close()
        await platform.db.dispose()


def _tls(args: argparse.Namespace, settings: Settings) -> tuple[Path, Path, Path | None] | None:
    """(certificate, key, CA bundle for clients or None) when serving HTTPS, else None."""
    cert = getattr(args, "tls_cert", None) or settings.tls_cert_file
    key = getattr(args, "tls_key", None) or settings.tls_key_file
    if getattr(args, "self_signed", False):
        if getattr(args, "tls_cert", None) or getattr(args, "tls_key", None):
            raise ConfigurationError("--self-signed makes its own certificate; leave out --tls-cert/--tls-key")
        from tls import ensure_self_signed

        made = ensure_self_signed(settings.data_dir / "tls", args.host)
        return made.cert, made.key, made.bundle
    if not cert and not key:
        return None
    if not (cert and key):
        raise ConfigurationError("HTTPS needs both --tls-cert and --tls-key (TERRAKUBE_TLS_CERT_FILE/_KEY_FILE)")
    for path in (Path(cert), Path(key)):
        if not path.is_file():
            raise ConfigurationError(f"TLS file {path} does not exist")
    return Path(cert).resolve(), Path(key).resolve(), None


def _ssl_options(tls: tuple[Path, Path, Path | None] | None) -> dict[str, str]:
    return {"ssl_certfile": str(tls[0]), "ssl_keyfile": str(tls[1])} if tls else {}


def _terraform_lines(settings: Settings, host: str, port: int, token: str, bundle: Path | None) -> str:
    """What a user sets before `terraform init` against this server's registry.

    Terraform's ``TF_TOKEN_<host>`` variables cannot name a port (``TF_TOKEN_127_0_0_1_8443``
    means the host ``127.0.0.1.8443``), so on any port but 443 the token goes into a CLI config
    file with a ``credentials`` block, written next to the admin token.
    """
    address = host if port == 443 else f"{host}:{port}"
    lines = ["", f"Registry for terraform: {address}/<organization>/<module>/<provider> and {address}/<organization>/<provider>"]
    if bundle is not None:
        lines.append(f"SSL_CERT_FILE={bundle}")
    if port == 443:
        lines.append(f"TF_TOKEN_{host.replace('-', '__').replace('.', '_')}={token}")
    else:
        rc = settings.data_dir / "terraform.rc"
        rc.touch(mode=0o600)
        rc.write_text(f'credentials "{address}" {{\n  token = "{token}"\n}}\n')
        lines.append(f"TF_CLI_CONFIG_FILE={rc}")
        lines.append(f"(TF_TOKEN_<host> cannot name the port {port}: {rc} holds the admin token as a credentials block)")
    return "\n".join(lines)


def cmd_up(args: argparse.Namespace) -> None:
    import os

    import uvicorn

    from app import create_app

    settings = ensure_embedded_secret(_settings(Mode.embedded, args.data_dir))
    tls = _tls(args, settings)
    scheme = "https" if tls else "http"
    host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
    if not settings.public_url:
        # The in-process executor reaches this very server (state backend, registry).
        settings = settings.model_copy(update={"public_url": f"{scheme}://{host}:{args.port}"})
    if tls and tls[2] is not None:
        # terraform run by the in-process executor must trust the certificate too.
        os.environ["SSL_CERT_FILE"] = str(tls[2])
    _migrate(settings)
    token = asyncio.run(_admin_token(settings))
    url = f"{scheme}://{args.host}:{args.port}/graphql"
    extra = _terraform_lines(settings, host, args.port, token, tls[2] if tls else None) if tls else ""
    print(
        f"Terrakube (embedded) data in {settings.data_dir}\n"
        f"GraphQL: {url}\n"
        f"Admin token (also in {settings.data_dir / 'admin-token'}):\n{token}{extra}",
        flush=True,
    )
    from workers.hardening import forbid_inspection

    forbid_inspection()  # this process runs the steps too: they must not read it through /proc
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info", access_log=False, **_ssl_options(tls))


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from app import create_app

    settings = _settings(Mode.production, None)
    # Refuse to start (exit 2, the setting named) rather than fail inside uvicorn's startup.
    from wiring import verify_storage

    asyncio.run(verify_storage(settings))
    tls = _tls(args, settings)
    if tls and tls[2] is not None:
        print(f"Self-signed certificate {tls[0]}\nSSL_CERT_FILE={tls[2]}", flush=True)
    workers = args.workers or settings.serve_workers
    # Several processes share the port (each with its own pools and caches, kept coherent over
    # Redis); they build the app from the same TERRAKUBE_* environment.
    target: Any = create_app(settings) if workers == 1 else "app:production_app"
    uvicorn.run(
        target, factory=workers > 1, workers=workers, host=args.host, port=args.port, log_level="info", access_log=False,
        proxy_headers=True, **_ssl_options(tls),
    )


def cmd_worker(args: argparse.Namespace) -> None:
    from workers.arq_worker import build_worker
    from workers.hardening import forbid_inspection

    settings = _settings(Mode.production, None)
    forbid_inspection()  # the steps it runs must not read its environment through /proc
    build_worker(settings).run()


def cmd_migrate(args: argparse.Namespace) -> None:
    settings = _settings(None, args.data_dir)
    _migrate(settings)
    print("database is at the latest schema revision")


def _tls_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("--tls-cert", default=None, help="serve HTTPS with this PEM certificate (chain)")
    command.add_argument("--tls-key", default=None, help="the PEM private key of --tls-cert")
    command.add_argument(
        "--self-signed", action="store_true",
        help="serve HTTPS with a certificate for 127.0.0.1 made once and kept in the data dir",
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="terrakube", description="Self-hosted Terraform automation platform.")
    sub = p.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run everything in one process (SQLite, local storage, in-process workers)")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=8080)
    up.add_argument("--data-dir", default=None, help="where data lives (default ~/.terrakube)")
    _tls_arguments(up)
    up.set_defaults(func=cmd_up)

    serve = sub.add_parser("serve", help="run the API (production settings from TERRAKUBE_* variables)")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument(
        "--workers", type=int, default=None, metavar="N",
        help="API processes sharing the port (default TERRAKUBE_SERVE_WORKERS, 1); about one per core",
    )
    _tls_arguments(serve)
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="run an arq worker on Redis (production settings)")
    worker.set_defaults(func=cmd_worker)

    migrate = sub.add_parser("migrate", help="upgrade the database to the latest schema")
    migrate.add_argument("--data-dir", default=None)
    migrate.set_defaults(func=cmd_migrate)
    return p


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except ConfigurationError as exc:
        print(f"terrakube: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
