"""API keys: add, list, revoke."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import (
    app,
    domain_errors,
)

keys_app = typer.Typer(help="API keys: intake systems route, officers review, admins manage.",
                       no_args_is_help=True)


app.add_typer(keys_app, name="keys")


@keys_app.command("add")
@domain_errors
def keys_add(
    role: Annotated[str, typer.Option(help="intake, officer or admin.")],
    name: Annotated[str, typer.Option(help="Who or what uses the key.")] = "",
) -> None:
    """Create a key; it is printed once and only its hash is stored."""
    from serving.auth import create_key
    from serving.settings import load_settings

    typer.echo(create_key(load_settings().api_keys_file, role, name))


@keys_app.command("list")
@domain_errors
def keys_list() -> None:
    """Key ids, names and roles (never the keys)."""
    from serving.auth import list_keys
    from serving.settings import load_settings

    for key in list_keys(load_settings().api_keys_file):
        typer.echo("  ".join(f"{k}={v}" for k, v in key.items()))


@keys_app.command("revoke")
@domain_errors
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The id shown by `keys list`.")]) -> None:
    """Revoke a key; servers notice at their next request."""
    from serving.auth import revoke_key
    from serving.settings import load_settings

    revoke_key(load_settings().api_keys_file, key_id)
    typer.echo(f"revoked {key_id}")
