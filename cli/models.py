"""Model versions (model/versions.py): list, history, promote through the gate, roll back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import (
    SWAP_HINT,
    BundlesOpt,
    app,
    domain_errors,
)

models_app = typer.Typer(help="Bundles on disk: list, promote, roll back, history.", no_args_is_help=True)


app.add_typer(models_app, name="models")


@models_app.command("list")
@domain_errors
def models_list(bundles: BundlesOpt = Path("bundles")) -> None:
    """Every bundle, newest first: active or not, headline accuracy, retraining gate verdict."""
    from model.versions import list_bundles

    for s in list_bundles(bundles):
        acc = ", ".join(f"{h} {v:.3f}" for h, v in s.accuracy.items())
        typer.echo(f"{'*' if s.active else ' '} {s.version}  {s.created or ''}  test: {acc or '-'}"
                   f"  gate: {s.gate or '-'}" + (f"  error: {s.error}" if s.error else ""))


@models_app.command("history")
@domain_errors
def models_history(bundles: BundlesOpt = Path("bundles")) -> None:
    """Every change of the active bundle, oldest first: when, what, who and why."""
    from model.versions import activation_history

    for e in activation_history(bundles):
        typer.echo(f"{e.at}  {e.action:<8} {e.previous or '-'} → {e.version}  by {e.actor or '-'}"
                   + (f"  ({e.reason})" if e.reason else ""))


@models_app.command("promote")
@domain_errors
def models_promote(version: Annotated[str, typer.Argument(help="Bundle version.")],
                   bundles: BundlesOpt = Path("bundles"),
                   force: Annotated[bool, typer.Option(
                       help="Promote even though its retraining comparison failed.")] = False,
                   reason: Annotated[str | None, typer.Option(
                       help="Why, for the history.")] = None) -> None:
    """Make a bundle active (refused if its retraining gate failed, unless --force)."""
    import getpass

    from model.versions import promote

    promote(bundles, version, force=force, actor=getpass.getuser(), reason=reason)
    typer.echo(f"active model: {version}; {SWAP_HINT}")


@models_app.command("rollback")
@domain_errors
def models_rollback(bundles: BundlesOpt = Path("bundles")) -> None:
    """Make the previously active bundle active again."""
    import getpass

    from model.versions import rollback

    left, now = rollback(bundles, actor=getpass.getuser())
    typer.echo(f"rolled back from {left} to {now}; {SWAP_HINT}")


@app.command("activate", hidden=True)
@domain_errors
def activate(version: Annotated[str, typer.Argument(help="Bundle version to make active.")],
             bundles: BundlesOpt = Path("bundles")) -> None:
    """Same as `huying models promote --force`."""
    models_promote(version, bundles, force=True, reason=None)
