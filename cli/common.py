"""What every command shares: the `huying` app, domain errors as exit code 2, common options."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from model.errors import HuyingError

if TYPE_CHECKING:
    from training.datasets import Dataset, Record

EXIT_DOMAIN_ERROR = 2


app = typer.Typer(
    name="huying",
    help="Huying (呼应): route citizen complaints to category, subcategory and department.",
    epilog="Example: huying baseline data/datasets/haikou12345.yaml --out runs/baseline-haikou",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals hold whole datasets and matrices
)


Command = TypeVar("Command", bound=Callable[..., Any])


def domain_errors(command: Command) -> Command:
    """A HuyingError becomes one red message and exit code 2; other errors keep their traceback."""
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except HuyingError as exc:
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(EXIT_DOMAIN_ERROR) from None
    return wrapper  # type: ignore[return-value]


DatasetArg = Annotated[Path, typer.Argument(
    help="Dataset config (YAML), e.g. data/datasets/haikou12345.yaml", show_default=False)]


PresetOpt = Annotated[str, typer.Option(help="Training preset: quick (demo, 6-15 min on 2 CPU "
                                        "cores), full (15-35 min, the most accurate), gpu (all layers, "
                                        "for a CUDA machine), tiny (tests).")]


BundlesOpt = Annotated[Path, typer.Option(help="Directory holding one bundle per version.")]


DEMO_DATASET = Path(__file__).resolve().parent.parent / "data" / "datasets" / "haikou12345.yaml"


SWAP_HINT = ("a running server keeps its model until POST /v1/admin/model "
             '{"version": ...} (admin key) or a restart')


def show_splits(dataset: Dataset) -> dict[str, list[Record]]:
    splits = dataset.split()
    typer.echo(f"{dataset.config.name}: {dataset.split_note}; "
               + ", ".join(f"{k} {len(v)} rows" for k, v in splits.items()))
    return splits


def store_session() -> Any:
    from serving.settings import load_settings
    from serving.storage import open_store

    return open_store(load_settings().database_url).sessions()
