"""Tables the commands print (rich)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def print_data_report(summary: Mapping[str, Any]) -> None:
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


def print_metrics(metrics: Mapping[str, Any]) -> None:
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


def print_cv(result: Mapping[str, Any]) -> None:
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
