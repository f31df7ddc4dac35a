"""The duty list: categories → subcategories, departments, and per subcategory its default
department, time limit, legal basis and description.

On disk a duty list is a directory of three UTF-8 CSV files, editable in any spreadsheet:

    categories.csv    category,description
    departments.csv   department,description
    duty_list.csv     category,subcategory,department,time_limit,legal_basis,description

`category` and `subcategory` are required; the other cells may be empty (never invent a legal
basis). `department` must be listed in departments.csv, `category` in categories.csv.
`time_limit` is a number and a unit: `30min`, `24h`, `3d` (calendar days) or `5wd` (working days).
Subcategory names may repeat under different categories: a subcategory is identified by its key
`category/subcategory`, which is also its label in the model.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from model.errors import TaxonomyError

HEADS = ("category", "subcategory", "department")
# The duty list's clock: time limits count calendar and working days in China's time zone, and a
# time without a zone (dataset rows, a client that sends none) is read as China time.
LOCAL_TIME = timezone(timedelta(hours=8), "CST")
KEY_SEPARATOR = "/"
_FILES = {
    "categories.csv": ("category", "description"),
    "departments.csv": ("department", "description"),
    "duty_list.csv": ("category", "subcategory", "department", "time_limit", "legal_basis",
                      "description"),
}


def aware_time(value: datetime | None) -> datetime | None:
    """Aware times as they are; one without a zone is China time (LOCAL_TIME)."""
    if value is None:
        return None
    return value.replace(tzinfo=LOCAL_TIME) if value.utcoffset() is None else value


def local_naive(value: datetime) -> datetime:
    """The time as the datasets write it: China time, without a zone."""
    return value.astimezone(LOCAL_TIME).replace(tzinfo=None) if value.utcoffset() is not None \
        else value


@dataclass(frozen=True)
class DutyEntry:
    """One subcategory of the duty list and what the duty list says about handling it."""

    category: str
    subcategory: str
    department: str = ""
    time_limit: str = ""
    legal_basis: str = ""
    description: str = ""

    @property
    def key(self) -> str:
        return subcategory_key(self.category, self.subcategory)


def subcategory_key(category: str, subcategory: str) -> str:
    return f"{category}{KEY_SEPARATOR}{subcategory}"


@dataclass(frozen=True)
class Taxonomy:
    """A validated duty list. Build it with `load_taxonomy` or `Taxonomy.from_dict`."""

    name: str
    categories: tuple[str, ...]
    departments: tuple[str, ...]
    entries: tuple[DutyEntry, ...]

    def __post_init__(self) -> None:
        problems = _check(self.categories, self.departments,
                          [(f"entry {i + 1}", e) for i, e in enumerate(self.entries)])
        if problems:
            raise TaxonomyError(problems)

    @property
    def subcategories(self) -> tuple[str, ...]:
        return tuple(e.key for e in self.entries)

    def labels(self, head: str) -> tuple[str, ...]:
        """The label space of one head, in duty-list order."""
        if head == "category":
            return self.categories
        if head == "subcategory":
            return self.subcategories
        if head == "department":
            return self.departments
        raise KeyError(f"unknown head {head!r}; heads are {', '.join(HEADS)}")

    def entry(self, key: str) -> DutyEntry:
        for e in self.entries:
            if e.key == key:
                return e
        raise KeyError(f"subcategory {key!r} is not in duty list {self.name!r}")

    def parent(self, key: str) -> str:
        """The category a subcategory key belongs to."""
        return key.split(KEY_SEPARATOR, 1)[0]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "categories": list(self.categories),
                "departments": list(self.departments),
                "entries": [asdict(e) for e in self.entries]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Taxonomy:
        try:
            return cls(name=data["name"], categories=tuple(data["categories"]),
                       departments=tuple(data["departments"]),
                       entries=tuple(DutyEntry(**e) for e in data["entries"]))
        except (KeyError, TypeError) as exc:
            raise TaxonomyError([f"taxonomy snapshot is malformed: {exc}"]) from exc


def load_taxonomy(directory: str | Path) -> Taxonomy:
    """Read and validate a duty-list directory; every problem is reported with file and line."""
    directory = Path(directory)
    if not directory.is_dir():
        raise TaxonomyError([f"{directory}: not a directory; a duty list is a directory holding "
                             + ", ".join(_FILES)])
    problems: list[str] = []
    tables = {name: list(_read_csv(directory / name, columns, problems))
              for name, columns in _FILES.items()}
    categories = _unique_column(tables["categories.csv"], "category", problems)
    departments = _unique_column(tables["departments.csv"], "department", problems)
    located = [(where, DutyEntry(**{c: row.get(c, "") for c in _FILES["duty_list.csv"]}))
               for where, row in tables["duty_list.csv"]]
    problems += _check(tuple(categories), tuple(departments), located)
    if problems:
        raise TaxonomyError(problems)
    return Taxonomy(name=directory.name, categories=tuple(categories),
                    departments=tuple(departments), entries=tuple(e for _, e in located))


def write_taxonomy(taxonomy: Taxonomy, directory: str | Path) -> None:
    """Write a duty list in the CSV format `load_taxonomy` reads."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rows = {
        "categories.csv": [{"category": c} for c in taxonomy.categories],
        "departments.csv": [{"department": d} for d in taxonomy.departments],
        "duty_list.csv": [asdict(e) for e in taxonomy.entries],
    }
    for name, columns in _FILES.items():
        with open(directory / name, "w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows[name])


def _read_csv(path: Path, columns: tuple[str, ...],
              problems: list[str]) -> Iterator[tuple[str, dict[str, str]]]:
    if not path.is_file():
        problems.append(f"{path}: missing; expected columns {','.join(columns)}")
        return
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in columns if c not in header and c in ("category", "subcategory",
                                                                   "department")]
        unknown = [c for c in header if c not in columns]
        if missing or unknown:
            problems.append(f"{path}:1: header {','.join(header)!r}: "
                            + (f"missing {missing} " if missing else "")
                            + (f"unknown {unknown} " if unknown else "")
                            + f"(expected {','.join(columns)})")
            return
        for row in reader:
            # reader.line_num is the physical line the row ended on (quoted cells may span lines)
            where = f"{path}:{reader.line_num}"
            if None in row:
                problems.append(f"{where}: more cells than the {len(header)} columns")
                continue
            yield where, {k: (v or "").strip() for k, v in row.items()}


def _unique_column(rows: list[tuple[str, dict[str, str]]], column: str,
                   problems: list[str]) -> list[str]:
    seen: dict[str, str] = {}
    for where, row in rows:
        value = row[column]
        if not value:
            problems.append(f"{where}: empty {column}")
        elif value in seen:
            problems.append(f"{where}: duplicate {column} {value!r} (first at {seen[value]})")
        else:
            seen[value] = where
    return list(seen)


def _check(categories: tuple[str, ...], departments: tuple[str, ...],
           entries: list[tuple[str, DutyEntry]]) -> list[str]:
    problems = [f"category {c!r} contains {KEY_SEPARATOR!r}, which separates subcategory keys"
                for c in categories if KEY_SEPARATOR in c]
    known_categories, known_departments = set(categories), set(departments)
    seen: dict[str, str] = {}
    for where, e in entries:
        if not e.category or not e.subcategory:
            problems.append(f"{where}: category and subcategory are required")
            continue
        if e.category not in known_categories:
            problems.append(f"{where}: unknown parent category {e.category!r}; "
                            "add it to categories.csv or fix the spelling")
        if e.department and e.department not in known_departments:
            problems.append(f"{where}: department {e.department!r} is not listed in "
                            "departments.csv")
        if e.time_limit and not _valid_time_limit(e.time_limit):
            problems.append(f"{where}: time_limit {e.time_limit!r} is not a number and a unit "
                            "(min, h, d or wd), e.g. 30min, 24h, 5wd")
        if e.key in seen:
            problems.append(f"{where}: duplicate subcategory {e.key!r} (first at {seen[e.key]})")
        else:
            seen[e.key] = where
    return problems


def _valid_time_limit(text: str) -> bool:
    from model.duty import parse_duration  # model/duty.py holds the rule; it imports this module

    return parse_duration(text) is not None
