"""The `terrakube` command: up (embedded), serve (API), worker (arq), migrate."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

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


def cmd_up(args: argparse.Namespace) -> None:
    import uvicorn

    from app import create_app

    settings = ensure_embedded_secret(_settings(Mode.embedded, args.data_dir))
    if not settings.public_url:
        # The in-process executor reaches this very server (state backend, registry).
        host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
        settings = settings.model_copy(update={"public_url": f"http://{host}:{args.port}"})
    _migrate(settings)
    token = asyncio.run(_admin_token(settings))
    url = f"http://{args.host}:{args.port}/graphql"
    print(
        f"Terrakube (embedded) data in {settings.data_dir}\n"
        f"GraphQL: {url}\n"
        f"Admin token (also in {settings.data_dir / 'admin-token'}):\n{token}",
        flush=True,
    )
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info")


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from app import create_app

    settings = _settings(Mode.production, None)
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info", proxy_headers=True)


def cmd_worker(args: argparse.Namespace) -> None:
    from workers.arq_worker import build_worker

    settings = _settings(Mode.production, None)
    build_worker(settings).run()


def cmd_migrate(args: argparse.Namespace) -> None:
    settings = _settings(None, args.data_dir)
    _migrate(settings)
    print("database is at the latest schema revision")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="terrakube", description="Self-hosted Terraform automation platform.")
    sub = p.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run everything in one process (SQLite, local storage, in-process workers)")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=8080)
    up.add_argument("--data-dir", default=None, help="where data lives (default ~/.terrakube)")
    up.set_defaults(func=cmd_up)

    serve = sub.add_parser("serve", help="run the API (production settings from TERRAKUBE_* variables)")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=8080)
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
