"""Complaint data in, one canonical record out; splits by time that never leak.

Which source field feeds which head is configuration (a dataset YAML in `data/datasets/`), not
code. A source may feed only some heads: the older-taxonomy Haikou tickets carry a department only,
and training uses them for that head alone.

    name: haikou12345
    taxonomy: ../taxonomies/haikou12345        # paths are relative to the YAML file
    sources:
      - path: ../haikou12345/tickets-2018-02-to-04.jsonl.gz
        id: ticket_id
        text: text
        time: {field: ticket_id, format: "%Y%m%d", chars: 8}
        heads: {category: cat2, subcategory: [cat2, cat3], department: dept}
        auxiliary: {older_topic: [cat1, cat2]}  # trains the encoder only, never served
    splits:                                     # by time; `until` is exclusive
      train: {until: "2018-04-01"}
      dev: {from: "2018-04-01", until: "2018-04-16"}
      test: {from: "2018-04-16"}
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from model.errors import DataError
from model.normalize import normalize_text, text_hash
from model.taxonomy import HEADS, Taxonomy, load_taxonomy, subcategory_key

SPLITS = ("train", "dev", "test")
HELD_OUT = 0.15  # dev share, and test share, of a stratified split (no time split configured)


@dataclass(frozen=True)
class Record:
    """One complaint in canonical form. `labels` holds only the heads this row has."""

    id: str
    text: str  # normalised: what the model sees
    labels: Mapping[str, str]
    source: str
    time: datetime | None = None
    raw_text: str = ""
    # Labels of a source's own scheme (`auxiliary` in its config): they train the encoder
    # through a head of their own, dropped once training ends; nothing serves or scores them.
    auxiliary: Mapping[str, str] = field(default_factory=dict)

    @cached_property  # splits and reports ask for it several times per record
    def text_hash(self) -> str:
        return text_hash(self.text)


@dataclass(frozen=True)
class SourceConfig:
    """How one file's fields map onto a Record."""

    path: Path
    text: str | Sequence[str] = "text"  # several fields are joined with a newline (title, body)
    id: str | None = None
    time: Mapping[str, Any] | None = None  # {field, format, chars?}
    heads: Mapping[str, str | Sequence[str]] = field(default_factory=dict)
    # name -> field, or fields joined with "/": labels the served heads cannot use (the older
    # Haikou tickets' own categories) that still teach the encoder what the texts are about
    auxiliary: Mapping[str, str | Sequence[str]] = field(default_factory=dict)
    name: str = ""

    def __post_init__(self) -> None:
        unknown = [h for h in self.heads if h not in HEADS]
        if unknown:
            raise DataError(f"source {self.path}: unknown head(s) {unknown}; heads are {HEADS}")
        if not isinstance(self.auxiliary, Mapping) or not all(
                isinstance(f, str) or (isinstance(f, Sequence) and f and all(isinstance(x, str) for x in f))
                for f in self.auxiliary.values()):
            raise DataError(f"source {self.path}: auxiliary must map a name to a field or a list of "
                            "fields, e.g. {older_topic: [cat1, cat2]}")
        bad = [n for n in self.auxiliary if not str(n).isidentifier()]
        if bad:
            raise DataError(f"source {self.path}: auxiliary label names must be identifiers "
                            f"(letters, digits, _), got {bad}")
        sub = self.heads.get("subcategory")
        if sub is not None and (isinstance(sub, str) or len(sub) != 2):
            raise DataError(f"source {self.path}: subcategory must be [category_field, "
                            "subcategory_field], since subcategory names repeat across categories")
        if self.time is not None and not {"field", "format"} <= set(self.time):
            raise DataError(f"source {self.path}: time needs `field` and `format` "
                            "(a strptime format), e.g. {field: ticket_id, format: '%Y%m%d', chars: 8}")


@dataclass(frozen=True)
class DatasetConfig:
    name: str
    taxonomy_dir: Path
    sources: tuple[SourceConfig, ...]
    splits: Mapping[str, Mapping[str, str]]
    path: Path | None = None

    @property
    def heads(self) -> tuple[str, ...]:
        present = {h for s in self.sources for h in s.heads}
        return tuple(h for h in HEADS if h in present)


def load_dataset_config(path: str | Path) -> DatasetConfig:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DataError(f"cannot read dataset config {path}: {exc}") from exc
    if not isinstance(raw, dict) or "sources" not in raw or "taxonomy" not in raw:
        raise DataError(f"{path}: a dataset config needs `name`, `taxonomy` and `sources`")
    base = path.parent
    sources = []
    for i, s in enumerate(raw["sources"]):
        if not isinstance(s, dict) or "path" not in s:
            raise DataError(f"{path}: sources[{i}] needs a `path`")
        known = {"path", "text", "id", "time", "heads", "auxiliary", "name"}
        if set(s) - known:
            raise DataError(f"{path}: sources[{i}] has unknown keys {sorted(set(s) - known)}")
        sources.append(SourceConfig(**{**s, "path": (base / s["path"]).resolve(),
                                       "name": s.get("name") or Path(s["path"]).name}))
    splits = raw.get("splits") or {}
    unknown_splits = set(splits) - set(SPLITS)
    if unknown_splits:
        raise DataError(f"{path}: unknown split(s) {sorted(unknown_splits)}; use {SPLITS}")
    for name, bounds in splits.items():
        if not isinstance(bounds, dict) or set(bounds) - {"from", "until"}:
            raise DataError(f"{path}: splits.{name} must be a mapping with `from` and/or `until`, "
                            'e.g. {from: "2018-04-01", until: "2018-04-16"}')
        for key, value in bounds.items():
            _bound(value, f"{path}: splits.{name}.{key}")
    return DatasetConfig(name=raw.get("name", path.stem), taxonomy_dir=(base / raw["taxonomy"]),
                         sources=tuple(sources), splits=splits, path=path)


def read_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a JSONL or CSV file, optionally gzipped."""
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    opener = gzip.open if path.suffix == ".gz" else open
    kind = path.suffixes[-2] if path.suffix == ".gz" and len(path.suffixes) > 1 else path.suffix
    # utf-8-sig: a byte-order mark (spreadsheet exports) is not part of the first cell or line
    with opener(path, "rt", encoding="utf-8-sig") as f:
        if kind == ".jsonl":
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise DataError(f"{path}:{n}: not valid JSON ({exc.msg})") from exc
        elif kind == ".csv":
            yield from csv.DictReader(io.StringIO(f.read()))
        else:
            raise DataError(f"{path}: unsupported format {kind!r}; use .jsonl or .csv (optionally .gz)")


def records_from_rows(rows: Iterable[Mapping[str, Any]], source: SourceConfig) -> Iterator[Record]:
    """Map rows (dicts, or a `datasets.Dataset`) onto Records as the source config says."""
    for n, row in enumerate(rows):
        fields = [source.text] if isinstance(source.text, str) else list(source.text)
        parts = [row.get(f) for f in fields]
        if not all(isinstance(p, str) for p in parts):
            raise DataError(f"{source.path} row {n + 1}: field(s) {fields} missing or not text")
        raw = "\n".join(p for p in parts if p)
        text = normalize_text(raw)
        if not text:
            continue
        labels = {}
        for head, head_fields in source.heads.items():
            if isinstance(head_fields, str):
                value = _cell(row.get(head_fields))
            else:
                cells = [_cell(row.get(f)) for f in head_fields]
                value = subcategory_key(*cells) if all(cells) else ""
            if value:
                labels[head] = value
        auxiliary = {}
        for name, aux_fields in source.auxiliary.items():
            cells = [_cell(row.get(f)) for f in ([aux_fields] if isinstance(aux_fields, str) else aux_fields)]
            if all(cells):
                auxiliary[name] = "/".join(cells)
        rid = str(row[source.id]) if source.id and row.get(source.id) is not None else f"{source.name}:{n}"
        yield Record(id=rid, text=text, labels=labels, source=source.name,
                     time=_parse_time(row, source, n + 1), raw_text=raw, auxiliary=auxiliary)


def _cell(value: Any) -> str:
    """A label cell as text; missing (None) is empty, but 0 is the label "0"."""
    return "" if value is None else str(value).strip()


def _parse_time(row: Mapping[str, Any], source: SourceConfig, n: int) -> datetime | None:
    if source.time is None:
        return None
    value = str(row.get(source.time["field"]) or "")
    chars = source.time.get("chars")
    if chars:
        value = value[: int(chars)]
    try:
        return datetime.strptime(value.strip(), source.time["format"])
    except ValueError as exc:
        raise DataError(f"{source.path} row {n}: time {value!r} (field "
                        f"{source.time['field']!r}) does not match format "
                        f"{source.time['format']!r}") from exc


@dataclass
class Dataset:
    """All records of a dataset config, checked against its taxonomy."""

    config: DatasetConfig
    taxonomy: Taxonomy
    records: list[Record]
    dropped_labels: Counter[str] = field(default_factory=Counter)

    @property
    def heads(self) -> tuple[str, ...]:
        return self.config.heads

    def split(self) -> dict[str, list[Record]]:
        """The configured time split; without one (a new city's first labels), a stratified,
        reproducible split (`split_note` says which)."""
        if self.config.splits:
            return split_by_time(self.records, self.config.splits)
        return split_stratified(self.records, self.heads[0])

    @property
    def split_note(self) -> str:
        if self.config.splits:
            return "split by time as configured in the dataset's `splits`"
        return (f"no `splits` in the dataset config: split at random, stratified by "
                f"{self.heads[0]}, {HELD_OUT:.0%} dev and {HELD_OUT:.0%} test (seed 0; repeats "
                "of a text stay together; labels with fewer than 3 texts all train)")


def load_dataset(config: DatasetConfig | str | Path) -> Dataset:
    if not isinstance(config, DatasetConfig):
        config = load_dataset_config(config)
    taxonomy = load_taxonomy(config.taxonomy_dir)
    spaces = {h: set(taxonomy.labels(h)) for h in config.heads}
    records: list[Record] = []
    dropped: Counter[str] = Counter()
    for source in config.sources:
        for rec in records_from_rows(read_rows(source.path), source):
            unknown = [h for h, v in rec.labels.items() if v not in spaces[h]]
            if unknown:
                dropped.update(unknown)
                rec = replace(rec, labels={h: v for h, v in rec.labels.items() if h not in unknown})
            records.append(rec)
    return Dataset(config=config, taxonomy=taxonomy, records=records, dropped_labels=dropped)


def data_hash(records: Sequence[Record]) -> str:
    """Identifies training data: the same rows and labels give the same hash."""
    digest = hashlib.sha256()
    for r in sorted(records, key=lambda r: (r.id, r.text)):
        digest.update(json.dumps([r.id, r.text, sorted(r.labels.items())],
                                 ensure_ascii=False).encode())
    return digest.hexdigest()[:16]


def split_by_time(records: Sequence[Record], bounds: Mapping[str, Mapping[str, str]]
                  ) -> dict[str, list[Record]]:
    """Assign records to splits by time, then drop from later splits every text seen earlier.

    A text is "seen" by its normalised hash, so a repeat of a training complaint never counts as
    a dev or test example. Records without a time, and all records when no splits are
    configured, go to train.
    """
    if not bounds:
        return {"train": list(records)}
    parsed = {name: (_bound(b.get("from"), f"splits.{name}.from"),
                     _bound(b.get("until"), f"splits.{name}.until")) for name, b in bounds.items()}
    out: dict[str, list[Record]] = {name: [] for name in SPLITS if name in bounds or name == "train"}
    for rec in records:
        target = "train" if rec.time is None else None
        for name, (lo, hi) in parsed.items():
            if target is None and rec.time is not None and (lo is None or rec.time >= lo) \
                    and (hi is None or rec.time < hi):
                target = name
        if target is not None:
            out[target].append(rec)
    seen: set[str] = set()
    for name in SPLITS:
        if name not in out:
            continue
        out[name] = [r for r in out[name] if r.text_hash not in seen]
        seen.update(r.text_hash for r in out[name])
    return out


def split_stratified(records: Sequence[Record], head: str, seed: int = 0
                     ) -> dict[str, list[Record]]:
    """train/dev/test for data without times to split by: per label of `head`, HELD_OUT of its
    texts to dev and as many to test, the rest to train. Records with the same normalised text
    go to the same split; the same records and seed always give the same split."""
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        groups.setdefault(r.text_hash, []).append(i)
    by_label: dict[str, list[str]] = {}
    for key, members in groups.items():
        by_label.setdefault(records[members[0]].labels.get(head, ""), []).append(key)
    rng = random.Random(seed)
    assigned: dict[str, list[int]] = {name: [] for name in SPLITS}
    for label in sorted(by_label):
        keys = sorted(by_label[label])
        rng.shuffle(keys)
        held = round(len(keys) * HELD_OUT) if len(keys) >= 3 else 0
        for j, key in enumerate(keys):
            name = "test" if j < held else "dev" if j < 2 * held else "train"
            assigned[name].extend(groups[key])
    return {name: [records[i] for i in sorted(rows)] for name, rows in assigned.items()}


def _bound(value: Any, where: str = "split bound") -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise DataError(f"{where}: {value!r} is not an ISO date; write it as YYYY-MM-DD "
                        "(optionally with a time, e.g. 2018-04-01T12:00)") from exc


def report(dataset: Dataset) -> dict[str, Any]:
    """What a data scientist checks before training: sizes, long tail, repeats, label conflicts."""
    recs = dataset.records
    splits = dataset.split() if dataset.config.splits else {"train": recs}
    by_hash: dict[str, list[Record]] = defaultdict(list)
    for r in recs:
        by_hash[r.text_hash].append(r)
    groups = [g for g in by_hash.values() if len(g) > 1]
    heads: dict[str, Any] = {}
    for head in dataset.heads:
        counts = Counter(r.labels[head] for r in recs if head in r.labels)
        labelled = sum(counts.values())
        conflicting = [g for g in groups if len({r.labels.get(head) for r in g if head in r.labels}) > 1]
        majority = [Counter(r.labels[head] for r in g if head in r.labels).most_common(1)[0][1]
                    for g in groups if any(head in r.labels for r in g)]
        in_groups = sum(sum(1 for r in g if head in r.labels) for g in groups)
        heads[head] = {
            "rows_labelled": labelled,
            "labels_used": len(counts),
            "labels_in_taxonomy": len(dataset.taxonomy.labels(head)),
            "top": counts.most_common(5),
            "labels_under_5_rows": sum(1 for c in counts.values() if c < 5),
            "rows_in_top_10pct_labels": round(
                sum(c for _, c in counts.most_common(max(1, len(counts) // 10))) / max(labelled, 1), 3),
            "duplicate_groups_with_conflict": len(conflicting),
            "majority_share_in_duplicate_groups": round(sum(majority) / max(in_groups, 1), 3),
        }
    return {
        "dataset": dataset.config.name,
        "rows": len(recs),
        "rows_by_source": dict(Counter(r.source for r in recs)),
        "splits": {k: len(v) for k, v in splits.items()},
        "duplicate_groups": len(groups),
        "rows_in_duplicate_groups": sum(len(g) for g in groups),
        "labels_dropped_not_in_taxonomy": dict(dataset.dropped_labels),
        "heads": heads,
    }
