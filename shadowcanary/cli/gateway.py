"""``shadowcanary gateway``: run the OpenAI-compatible gateway, and hash service keys for it."""

from __future__ import annotations

import os
import secrets
from typing import Annotated

import typer

from shadowcanary.cli.support import configure_service_logging, console, friendly_errors

gateway_app = typer.Typer(
    help="The OpenAI-compatible gateway (tap + canary routing for any language)."
)


@gateway_app.command("run")
@friendly_errors
def run(
    host: Annotated[str | None, typer.Option(help="Interface (default: settings).")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (default: settings, 8080).")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Server processes sharing the port (default: settings).")
    ] = None,
) -> None:
    """Serve /v1/chat/completions, /v1/responses, /v1/embeddings, /v1/models, /v1/tap/events.

    Uses the embedded Postgres and Redis unless SHADOWCANARY_DATABASE_URL / _REDIS_URL are set.

    Example: shadowcanary gateway run --port 8080   (with SHADOWCANARY_GATEWAY__API_KEYS set)
    """
    from shadowcanary.gateway.server import serve
    from shadowcanary.launcher.embedded_services import resolve_urls
    from shadowcanary.settings import load_settings
    from shadowcanary.store.db import migrate

    settings = load_settings()
    configure_service_logging(settings)
    urls = resolve_urls(settings)
    migrate(urls.database_url)
    # Worker processes re-read the environment: hand them the resolved services too.
    os.environ["SHADOWCANARY_DATABASE_URL"] = urls.database_url
    os.environ["SHADOWCANARY_REDIS_URL"] = urls.redis_url
    overrides = {
        k: v for k, v in (("host", host), ("port", port), ("workers", workers)) if v is not None
    }
    for key, value in overrides.items():
        os.environ[f"SHADOWCANARY_GATEWAY__{key.upper()}"] = str(value)
    serve(load_settings())


@gateway_app.command("hash-key")
@friendly_errors
def hash_key_command(
    key: Annotated[
        str | None, typer.Argument(help="The service's key (default: generate a new one).")
    ] = None,
) -> None:
    """Print the SHA-256 to put in SHADOWCANARY_GATEWAY__API_KEYS for a service's key.

    Example: shadowcanary gateway hash-key    (generates a key and prints both)
    """
    from shadowcanary.gateway.auth import hash_key

    if key is None:
        key = "sc-gw-" + secrets.token_urlsafe(32)
        console.print(f"key:    {key}  [dim](give this to the service; it is not stored)[/]")
    console.print(f"sha256: {hash_key(key)}")
