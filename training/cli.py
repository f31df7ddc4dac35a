"""The `huying` command line: look at data, rebuild duty lists, train the baseline, evaluate models.

    huying data report data/datasets/haikou12345.yaml
    huying baseline data/datasets/haikou12345.yaml --out runs/baseline-haikou
    huying evaluate --model runs/baseline-haikou --dataset data/datasets/haikou12345.yaml \\
        --split test --out runs/eval-baseline-test

Heavy libraries (scikit-learn, matplotlib, torch) are imported inside the commands that need them,
so `huying --help` is instant and serving commands run without the training extras.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from model.errors import DataError, HuyingError

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
data_app = typer.Typer(
    help="Inspect a dataset and rebuild the vendored duty lists.",
    epilog="Example: huying data report data/datasets/haikou12345.yaml",
    no_args_is_help=True,
)
app.add_typer(data_app, name="data")

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


@data_app.command("report")
@domain_errors
def data_report(
    dataset_yaml: DatasetArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Rows, splits, labels per head, long tail, duplicates and label conflicts of a dataset."""
    from training.datasets import load_dataset, report

    summary = report(load_dataset(dataset_yaml))
    if as_json:
        typer.echo(json.dumps(summary, ensure_ascii=False, indent=1))
        return
    _print_data_report(summary)


@data_app.command("build-duty-lists")
@domain_errors
def build_duty_lists(
    shared: Annotated[Path, typer.Option(
        help="Folder with haikou12345/ and teddy2020c/ source files (.jsonl or .jsonl.gz): the "
             "vendored data/ or the shared ../shared/data.")] = Path("data"),
    out: Annotated[Path, typer.Option(help="Where the duty-list folders are written.")]
        = Path("data/taxonomies"),
) -> None:
    """Regenerate the Haikou and Teddy duty lists (data/taxonomies) from their source data."""
    from model.taxonomy import write_taxonomy
    from training.duty_lists import haikou_duty_list, teddy_duty_list

    haikou = haikou_duty_list(
        _source_file(shared, "haikou12345/tickets-2018-02-to-04.jsonl"),
        _source_file(shared, "haikou12345/tickets-2017-12-to-2018-01-older-taxonomy.jsonl"))
    teddy = teddy_duty_list(_source_file(shared, "teddy2020c/taxonomy-3level.csv"))
    for taxonomy in (haikou, teddy):
        write_taxonomy(taxonomy, out / taxonomy.name)
        typer.echo(f"{out / taxonomy.name}: {len(taxonomy.categories)} categories, "
                   f"{len(taxonomy.entries)} subcategories, "
                   f"{len(taxonomy.departments)} departments")


@app.command()
@domain_errors
def baseline(
    dataset_yaml: DatasetArg,
    out: Annotated[Path, typer.Option(help="Directory for the trained baseline and its dev "
                                           "evaluation.", show_default=False)],
    cv: Annotated[int, typer.Option(
        min=0, help="Also report K-fold cross-validated metrics over all rows (for datasets "
                    "without a time split, e.g. Teddy); 0 skips it.")] = 0,
    c: Annotated[float, typer.Option("--C", help="Inverse regularisation of the linear SVM.")]
        = 0.5,
    balanced: Annotated[bool, typer.Option(
        help="Weight classes inversely to their frequency (on Haikou dev it moved accuracy "
             "and macro-F1 by under 0.01).")]
        = False,
) -> None:
    """Train the TF-IDF + linear SVM baseline on the train split; print its dev metrics.

    Example: huying baseline data/datasets/teddy2020c.yaml --out runs/baseline-teddy --cv 5
    """
    from training.baseline import BaselineConfig, cross_validate, train_baseline
    from training.datasets import load_dataset
    from training.evaluate import evaluate

    config = BaselineConfig(C=c, class_weight="balanced" if balanced else None)
    dataset = load_dataset(dataset_yaml)
    splits = _splits(dataset)
    spaces = {h: dataset.taxonomy.labels(h) for h in dataset.heads}
    model = train_baseline(splits["train"], spaces, config=config, dataset=dataset.config.name)
    model.save(out)
    typer.echo(f"trained on {len(splits['train'])} rows ({', '.join(model.spaces)}); "
               f"saved to {out}")
    if splits.get("dev"):
        metrics = evaluate(model, splits["dev"], out / "eval-dev", split_name="dev")
        _print_metrics(metrics)
        typer.echo(f"report: {out / 'eval-dev' / 'report.md'}")
    if cv:
        result = cross_validate(dataset, cv, config=config)
        (out / "cv.json").write_text(json.dumps(result, ensure_ascii=False, indent=1),
                                     encoding="utf-8")
        _print_cv(result)


@app.command("evaluate")
@domain_errors
def evaluate_command(
    model: Annotated[Path, typer.Option(help="A baseline directory or a router bundle.",
                                        show_default=False)],
    out: Annotated[Path, typer.Option(help="Directory for metrics.json, report.md and plots.",
                                      show_default=False)],
    dataset: Annotated[Path | None, typer.Option(
        help="Dataset config (YAML); evaluates its --split.", show_default=False)] = None,
    split: Annotated[str, typer.Option(help="Split of --dataset: train, dev or test.")] = "dev",
    data: Annotated[Path | None, typer.Option(
        help="Labelled JSONL instead of --dataset: `text` and any of `category`, `subcategory` "
             "(`category/subcategory`, or a name beside `category`), `department`.",
        show_default=False)] = None,
    baseline: Annotated[Path | None, typer.Option(
        help="A baseline directory to show beside the model.", show_default=False)] = None,
) -> None:
    """Score a model on labelled data, beside a baseline; write metrics.json, report.md, plots.

    Example: huying evaluate --model bundles/v3 --dataset data/datasets/haikou12345.yaml
    --split test --baseline runs/baseline-haikou --out runs/eval-v3-test
    """
    from training.evaluate import evaluate, load_labelled_jsonl
    from training.predictor import load_predictor

    if (dataset is None) == (data is None):
        raise typer.BadParameter("give exactly one of --dataset YAML (with --split) or "
                                 "--data FILE.jsonl", param_hint="--dataset / --data")
    predictor = load_predictor(model)  # before the data: a wrong --model fails fast
    reference = load_predictor(baseline) if baseline else None
    if data is not None:
        records, split_name = load_labelled_jsonl(data), data.name
    elif dataset is not None:
        from training.datasets import load_dataset

        splits = _splits(load_dataset(dataset))
        if not splits.get(split):
            available = ", ".join(f"{k} ({len(v)} rows)" for k, v in splits.items())
            raise DataError(f"{dataset} has no rows in split {split!r}; available: {available}")
        records, split_name = splits[split], split
    metrics = evaluate(predictor, records, out, baseline=reference, split_name=split_name)
    _print_metrics(metrics)
    typer.echo(f"report: {out / 'report.md'}")


def _splits(dataset: Dataset) -> dict[str, list[Record]]:
    # Without `splits` in its config (Teddy) every row is training data; Dataset.split() would
    # assign none of them.
    return dataset.split() if dataset.config.splits else {"train": list(dataset.records)}


def _source_file(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(f"{folder / name} (or .gz) not found; point --shared at the folder holding "
                    "haikou12345/ and teddy2020c/, e.g. --shared ../shared/data")


def _print_data_report(summary: Mapping[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    overview = Table(title=f"dataset {summary['dataset']}", show_header=False)
    overview.add_row("rows", str(summary["rows"]))
    for source, rows in summary["rows_by_source"].items():
        overview.add_row(f"  from {source}", str(rows))
    overview.add_row("splits", ", ".join(f"{k} {v}" for k, v in summary["splits"].items()))
    overview.add_row("duplicate groups (same normalised text)",
                     f"{summary['duplicate_groups']} groups, "
                     f"{summary['rows_in_duplicate_groups']} rows")
    dropped = summary["labels_dropped_not_in_taxonomy"]
    overview.add_row("labels dropped (not in duty list)",
                     ", ".join(f"{h} {n}" for h, n in dropped.items()) or "none")
    # One column per head keeps the table inside 80 columns.
    heads = Table(title="labels per head")
    heads.add_column("")
    for head in summary["heads"]:
        heads.add_column(head, justify="right")
    rows = {"rows labelled": lambda h: str(h["rows_labelled"]),
            "labels used / in duty list": lambda h: f"{h['labels_used']} / "
                                                    f"{h['labels_in_taxonomy']}",
            "labels with < 5 rows (long tail)": lambda h: str(h["labels_under_5_rows"]),
            "rows in the top 10% labels": lambda h: f"{h['rows_in_top_10pct_labels']:.1%}",
            "duplicate groups with conflicting labels":
                lambda h: str(h["duplicate_groups_with_conflict"]),
            "majority-label share in duplicate groups":
                lambda h: f"{h['majority_share_in_duplicate_groups']:.1%}"}
    for name, cell in rows.items():
        heads.add_row(name, *(cell(h) for h in summary["heads"].values()))
    frequent = Table(title="most frequent labels")
    frequent.add_column("head")
    frequent.add_column("label")
    frequent.add_column("rows", justify="right")
    for head, h in summary["heads"].items():
        for i, (label, n) in enumerate(h["top"]):
            frequent.add_row(head if i == 0 else "", label, str(n))
    console = Console()
    console.print(overview)
    console.print(heads)
    console.print(frequent)


def _print_metrics(metrics: Mapping[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    runs = {"model": metrics["model"]}
    if metrics["baseline"]:
        runs["baseline"] = metrics["baseline"]
    table = Table(title=f"{metrics['split']}, {metrics['rows']} rows: "
                  + ", ".join(f"{role} = {run['name']}" for role, run in runs.items()))
    for column in ("head", "", "rows", "accuracy", "macro-F1", "wtd-F1", "top-3", "ECE"):
        table.add_column(column, justify="left" if column in ("head", "") else "right",
                         no_wrap=column == "head")
    for head in metrics["model"]["heads"]:
        for role, run in runs.items():
            m = run["heads"].get(head)
            if m:
                table.add_row(head, role, str(m["rows"]), *(
                    f"{m[k]:.3f}" for k in ("accuracy", "macro_f1", "weighted_f1",
                                            "top3_accuracy", "ece")))
    Console().print(table)


def _print_cv(result: Mapping[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{result['folds']}-fold cross-validation, {result['rows']} rows")
    for column in ("head", "macro-F1 (mean ± sd)", "accuracy (mean ± sd)", "pooled macro-F1",
                   "pooled ECE"):
        table.add_column(column, justify="left" if column == "head" else "right")
    for head, h in result["heads"].items():
        table.add_row(head, f"{h['macro_f1_mean']:.3f} ± {h['macro_f1_std']:.3f}",
                      f"{h['accuracy_mean']:.3f} ± {h['accuracy_std']:.3f}",
                      f"{h['pooled']['macro_f1']:.3f}", f"{h['pooled']['ece']:.3f}")
    Console().print(table)
