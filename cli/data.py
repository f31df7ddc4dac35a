"""Data commands: look at a dataset, rebuild duty lists, the baseline, evaluate, predict, audit labels."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from cli.common import (
    DatasetArg,
    app,
    domain_errors,
    show_splits,
    store_session,
)
from cli.render import print_cv, print_data_report, print_metrics
from model.errors import DataError

if TYPE_CHECKING:
    pass


data_app = typer.Typer(
    help="Inspect a dataset and rebuild the vendored duty lists.",
    epilog="Example: huying data report data/datasets/haikou12345.yaml",
    no_args_is_help=True,
)


app.add_typer(data_app, name="data")


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
    print_data_report(summary)


@data_app.command("build-duty-lists")
@domain_errors
def build_duty_lists(
    shared: Annotated[Path, typer.Option(
        help="Folder with haikou12345/ and teddy2020c/ source files (.jsonl or .jsonl.gz): the "
             "vendored data/ or the shared ../shared/data.")] = Path("data"),
    out: Annotated[Path, typer.Option(help="Where the duty-list folders are written.")]
        = Path("data/taxonomies"),
) -> None:
    """Regenerate the Haikou and Teddy duty lists (data/taxonomies) from their source data,
    with the time limits the Haikou tickets state (and their counts in time_limits.csv)."""
    from model.taxonomy import write_taxonomy
    from training.datasets import read_rows
    from training.duty_lists import (
        haikou_duty_list,
        mine_time_limits,
        teddy_duty_list,
        with_time_limits,
        write_time_limits,
    )

    tickets = _source_file(shared, "haikou12345/tickets-2018-02-to-04.jsonl")
    stated = mine_time_limits(read_rows(tickets))
    haikou = with_time_limits(haikou_duty_list(
        tickets, _source_file(shared, "haikou12345/tickets-2017-12-to-2018-01-older-taxonomy.jsonl")),
        stated)
    teddy = teddy_duty_list(_source_file(shared, "teddy2020c/taxonomy-3level.csv"))
    for taxonomy in (haikou, teddy):
        write_taxonomy(taxonomy, out / taxonomy.name)
        typer.echo(f"{out / taxonomy.name}: {len(taxonomy.categories)} categories, "
                   f"{len(taxonomy.entries)} subcategories "
                   f"({sum(bool(e.time_limit) for e in taxonomy.entries)} with a time limit), "
                   f"{len(taxonomy.departments)} departments")
    write_time_limits(stated, out / haikou.name / "time_limits.csv")
    typer.echo(f"{out / haikou.name}/time_limits.csv: {len(stated)} stated limits with counts")


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
    splits = show_splits(dataset)
    spaces = {h: dataset.taxonomy.labels(h) for h in dataset.heads}
    model = train_baseline(splits["train"], spaces, config=config, dataset=dataset.config.name)
    model.save(out)
    typer.echo(f"trained on {len(splits['train'])} rows ({', '.join(model.spaces)}); "
               f"saved to {out}")
    if splits.get("dev"):
        metrics = evaluate(model, splits["dev"], out / "eval-dev", split_name="dev")
        print_metrics(metrics)
        typer.echo(f"report: {out / 'eval-dev' / 'report.md'}")
    if cv:
        result = cross_validate(dataset, cv, config=config)
        (out / "cv.json").write_text(json.dumps(result, ensure_ascii=False, indent=1),
                                     encoding="utf-8")
        print_cv(result)


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

        splits = show_splits(load_dataset(dataset))
        if not splits.get(split):
            available = ", ".join(f"{k} ({len(v)} rows)" for k, v in splits.items())
            raise DataError(f"{dataset} has no rows in split {split!r}; available: {available}")
        records, split_name = splits[split], split
    parts = predictor.parts() if hasattr(predictor, "parts") else {}
    metrics = evaluate(predictor, records, out, baseline=reference, split_name=split_name,
                       parts=parts)
    print_metrics(metrics)
    typer.echo(f"report: {out / 'report.md'}")


def _source_file(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(f"{folder / name} (or .gz) not found; point --shared at the folder holding "
                    "haikou12345/ and teddy2020c/, e.g. --shared ../shared/data")


class Engine(StrEnum):
    local = "local"
    ray = "ray"


@app.command()
@domain_errors
def predict(
    input_jsonl: Annotated[Path, typer.Argument(help="JSONL with a `text` field per row (with "
                                                "--engine ray also a folder of *.jsonl / "
                                                "*.jsonl.gz shards, or a glob).")],
    model_dir: Annotated[Path, typer.Option("--model", help="A bundle directory.")],
    output: Annotated[Path, typer.Option(help="Where to write one routing per row (JSONL).")],
    batch_size: Annotated[int, typer.Option(min=1, max=1024)] = 32,
    engine: Annotated[Engine, typer.Option(help="local: this process; ray: Ray Data workers "
                                                "(the bulk extra).")] = Engine.local,
    workers: Annotated[int | None, typer.Option(min=1, max=1024, show_default=False,
                                                help="Ray workers, one model each (default: "
                                                     "one per CPU).")] = None,
    ray_address: Annotated[str | None, typer.Option(help="An existing Ray cluster, e.g. "
                                                         "10.0.0.5:6379 or auto (default: a "
                                                         "local Ray).")] = None,
) -> None:
    """Route every row of a JSONL file; output rows keep the input order (and `id` if given)."""
    from tqdm import tqdm

    if engine is Engine.local and (workers is not None or ray_address is not None):
        raise typer.BadParameter("--workers and --ray-address need --engine ray",
                                 param_hint="--engine")
    if engine is Engine.ray:
        from training.bulk import route_files

        with tqdm(unit="text") as bar:
            result = route_files(input_jsonl, model_dir, output, batch_size=batch_size,
                                 workers=workers, address=ray_address, progress=bar.update)
        typer.echo(f"{result.rows} routings written to {output} (ray, {result.workers} workers, "
                   f"{result.busy} of them given rows)")
        return

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
    from training.bulk import text_row

    if not path.is_file():
        raise DataError(f"{path} does not exist; pass a JSONL file with a `text` field per row")
    try:
        with open(path, encoding="utf-8-sig") as f:
            rows = [text_row(line, f"{path}:{n}") for n, line in enumerate(f, 1)]
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 ({exc.reason})") from exc
    return [row for row in rows if row is not None]


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

    with store_session() as session:
        result = audit_dataset(dataset_yaml, export_submitted(session), top=top,
                               config=AuditConfig(folds=folds))
        queued = enqueue_suspects(session, result.to_dicts(), actor="cli:audit")
    typer.echo(f"{len(queued)} suspected label errors queued for review")


@app.command("hot-issues")
@domain_errors
def hot_issues(
    messages: Annotated[Path, typer.Argument(help="JSONL of messages: id, text, time, and "
                                            "optionally title, user, likes, dislikes (Teddy).")],
    model_dir: Annotated[Path, typer.Option("--model", help="A bundle: its pair model groups.")],
    out: Annotated[Path, typer.Option(help="Folder for hot-issues.csv, details.csv and "
                                           "hot-issues.xlsx (both tables as sheets).")],
    since: Annotated[str | None, typer.Option("--from", help="First day, YYYY-MM-DD.")] = None,
    until: Annotated[str | None, typer.Option("--to", help="Last day, YYYY-MM-DD.")] = None,
    top: Annotated[int, typer.Option(min=1, max=10_000, help="Issues in the tables.")] = 5,
    window_days: Annotated[int, typer.Option(min=1, max=365)] = 30,
) -> None:
    """Group messages into hot issues (one event each) and write the Teddy Cup tables."""
    import csv
    from datetime import datetime, timedelta

    from openpyxl import Workbook

    from model.hot_issues import (
        Report,
        detail_table,
        group,
        issue_table,
        rank,
        router_score,
    )
    from model.normalize import normalize_text
    from model.router import Router
    from training.datasets import read_rows
    from training.pairs import _teddy_time

    def day(value: str | None, name: str) -> datetime | None:
        try:
            return None if value is None else datetime.strptime(value, "%Y-%m-%d")
        except ValueError:
            raise DataError(f"--{name} {value!r} is not a date like 2019-12-31") from None

    lo, hi = day(since, "from"), day(until, "to")
    if lo and hi and lo > hi:
        raise DataError(f"--from {since} is after --to {until}: swap them")
    reports = []
    for n, row in enumerate(read_rows(messages), 1):
        if not isinstance(row.get("text"), str) or not row.get("id"):
            raise DataError(f"{messages}:{n}: each message needs an `id` and a `text`")
        title = str(row.get("title") or "")
        when = _teddy_time(row).replace(tzinfo=None)
        if (lo and when < lo) or (hi and when >= hi + timedelta(days=1)):
            continue
        reactions = sum(int(row.get(k) or 0) for k in ("likes", "dislikes"))
        reports.append(Report(str(row["id"]), normalize_text(f"{title}。{row['text']}" if title
                                                             else row["text"]),
                              when, str(row.get("user") or "") or None, reactions))
    if not reports:
        raise DataError(f"no message of {messages} falls between --from and --to")
    router = Router.load(model_dir)
    score, threshold = router_score(router, reports)
    issues = group(reports, score, threshold=threshold, window=timedelta(days=window_days))
    now = max(r.time for r in reports)
    ranked = rank(issues, now)
    out.mkdir(parents=True, exist_ok=True)
    tables = {"热点问题表": ("hot-issues.csv", issue_table(ranked, now, top)),
              "热点问题留言明细表": ("details.csv", detail_table(ranked, top))}
    workbook = Workbook()
    workbook.remove(workbook.active)
    for sheet, (name, rows) in tables.items():
        with open(out / name, "w", encoding="utf-8-sig", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        ws = workbook.create_sheet(sheet)
        ws.append(list(rows[0]))
        for row in rows:
            ws.append(list(row.values()))
    workbook.save(out / "hot-issues.xlsx")
    typer.echo(f"{len(reports)} messages → {len(issues)} issues "
               f"({sum(len(i.reports) > 1 for i in issues)} with more than one report); top {top}:")
    for row in issue_table(ranked, now, top):
        typer.echo(f"  {row['热度排名']}. {row['问题ID']} heat {row['热度指数']} "
                   f"{row['时间范围']} {row['地点/人群']}: {row['问题描述']}")
    typer.echo(f"tables written to {out}/hot-issues.csv, {out}/details.csv and "
               f"{out}/hot-issues.xlsx")


def _period(since: str, until: str) -> tuple[Any, Any]:
    """--from and --to as dates, in order (DataError says what is wrong)."""
    from datetime import date

    try:
        lo, hi = date.fromisoformat(since), date.fromisoformat(until)
    except ValueError:
        raise DataError(f"--from {since!r} / --to {until!r}: give dates like 2018-04-30") from None
    if lo > hi:
        raise DataError(f"--from {since} is after --to {until}: swap them")
    return lo, hi


@app.command("stats")
@domain_errors
def stats_command(
    cases: Annotated[Path, typer.Argument(help="Case rows, CSV or JSONL, as GET "
                                        "/v1/stats/cases.csv exports them.")],
    since: Annotated[str, typer.Option("--from", help="First day, YYYY-MM-DD.")],
    until: Annotated[str, typer.Option("--to", help="Last day, YYYY-MM-DD.")],
    out: Annotated[Path, typer.Option(help="Folder for summary.csv, volumes.csv and "
                                           "departments.csv.")],
    by: Annotated[str, typer.Option(help="Volumes per day, week or month.")] = "day",
    as_of: Annotated[str | None, typer.Option(
        help="Judge overdue at this time (ISO 8601 with a zone; default: the period's end).")]
        = None,
    time_zone: Annotated[str, typer.Option(help="The hotline's IANA time zone.")]
        = "Asia/Shanghai",
) -> None:
    """The statistics /v1/stats gives, from case rows: volumes, share closed, time to close,
    overdue and repeats per department."""
    from datetime import datetime
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from serving import stats

    try:
        zone = ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise DataError(f"--time-zone {time_zone!r} is not an IANA time zone") from None
    lo, hi = _period(since, until)
    if by not in ("day", "week", "month"):
        raise DataError(f"--by {by!r}: use day, week or month")
    try:
        judged = stats.period_bounds(lo, hi, zone)[1] if as_of is None else \
            datetime.fromisoformat(as_of)
    except ValueError:
        raise DataError(f"--as-of {as_of!r} is not an ISO 8601 time") from None
    if judged.tzinfo is None:
        raise DataError(f"--as-of {as_of!r} needs a time zone, e.g. +08:00")
    result = stats.statistics(stats.read_case_rows(cases), lo, hi, zone,
                              by=cast("stats.Granularity", by), as_of=judged)
    out.mkdir(parents=True, exist_ok=True)
    for table in ("summary", "volumes", "departments"):
        (out / f"{table}.csv").write_text(stats.to_csv(result.table(table)), encoding="utf-8")
    s = result.summary
    typer.echo(f"{s['complaints']} complaints {lo} – {hi}: {s['closed']} closed "
               f"({s['closed_share']}), median {s['close_hours_median']} h to close, "
               f"{s['overdue']} of {s['with_time_limit']} with a time limit overdue, "
               f"{s['repeats']} repeats")
    for d in result.departments[:10]:
        typer.echo(f"  {d['department']}: {d['complaints']} complaints, {d['closed']} closed, "
                   f"{d['overdue']} overdue")
    typer.echo(f"tables written to {out}/summary.csv, volumes.csv, departments.csv")


@app.command("letters")
@domain_errors
def letters_command(
    department: Annotated[str, typer.Option(help="The department, as the duty list names it.")],
    since: Annotated[str, typer.Option("--from", help="First day, YYYY-MM-DD.")],
    until: Annotated[str, typer.Option("--to", help="Last day, YYYY-MM-DD.")],
    out: Annotated[Path, typer.Option(help="Folder for the letter as .md, .html and .pdf.")],
) -> None:
    """A department's reminder letter (提醒函) for a period, from the store (HUYING_DATABASE_URL):
    its numbers, early warnings, repeated events and overdue cases."""
    from zoneinfo import ZoneInfo

    from serving import letter_pdf, letters
    from serving.settings import load_settings

    lo, hi = _period(since, until)
    settings = load_settings()
    with store_session() as session:
        letter = letters.build_letter(session, department.strip(), lo, hi,
                                      ZoneInfo(settings.time_zone), settings.districts)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"letter-{lo}-{hi}"
    stem.with_suffix(".md").write_text(letter.markdown(), encoding="utf-8")
    stem.with_suffix(".html").write_text(letter.html(), encoding="utf-8")
    stem.with_suffix(".pdf").write_bytes(letter_pdf.render(letter))
    n = letter.numbers
    typer.echo(f"{letter.title}: {n['complaints']} complaints, {n['surges']} surges, "
               f"{n['repeated_events']} repeated events, {n['overdue']} overdue")
    typer.echo(f"written to {stem}.md, .html and .pdf")
