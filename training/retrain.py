"""Retraining from officers' corrections, and promotion only when the candidate is not worse.

    huying retrain data/datasets/haikou12345.yaml --bundles bundles/ --preset quick --promote
    huying models list | promote VERSION [--force] | rollback

`training_set` adds submitted corrections to the original data (a correction overrides the labels
of the same complaint id; corrections of new complaints become training rows; the test split stays
frozen and no correction of it, or of its texts, is trained on). training/gate.py judges the
candidate against the current model. `retrain` runs the whole thing, writes
`bundles/comparisons/<version>/{report.md,comparison.json}`, and promotes only when
the gate passes. Corrections are plain dicts (what `serving.corrections.export_submitted` returns,
or lines of a JSONL file), so this module never touches the store.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model import versions
from model.duty import row_labels
from model.errors import DataError, InvalidInput
from model.normalize import normalize_text, text_hash
from model.taxonomy import KEY_SEPARATOR, local_naive
from training.datasets import Dataset, Record, load_dataset, read_rows
from training.gate import Comparison, Gate, compare, write_comparison

if TYPE_CHECKING:
    from training.finetune import FinetuneConfig
    from training.pipeline import BuildOptions

KINDS = ("accept", "correct", "not_a_complaint", "split")
CORRECTIONS_SOURCE = "corrections"


# --- corrections --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Correction:
    """One submitted answer about a complaint: the labels a person gave it."""

    complaint_id: str | None
    text: str  # as received; normalised when it becomes a Record
    kind: str
    labels: Mapping[str, str]
    parts: tuple[Mapping[str, Any], ...] = ()
    submitted_at: datetime | None = None
    received_at: datetime | None = None
    key: str = ""  # stable id for rows without a complaint id

    @property
    def time(self) -> datetime | None:
        return self.received_at or self.submitted_at


def parse_corrections(rows: Iterable[Mapping[str, Any]]) -> list[Correction]:
    """Corrections from plain dicts: `text`, any of category/subcategory/department, and
    optionally complaint_id, kind (default "correct"), parts, submitted_at, received_at (datetimes
    or ISO strings), response_id. A bare subcategory needs its category beside it."""
    out = []
    for n, row in enumerate(rows, 1):
        where = f"correction {n}" + (f" (complaint {row.get('complaint_id')})"
                                     if row.get("complaint_id") else "")
        kind = str(row.get("kind") or "correct")
        if kind not in KINDS:
            raise DataError(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}")
        text = row.get("text")
        if not isinstance(text, str):
            raise DataError(f"{where}: `text` (the complaint as received) must be a string")
        parts = tuple(dict(p) for p in (row.get("parts") or ()))
        cid = row.get("complaint_id")
        out.append(Correction(
            complaint_id=None if cid in (None, "") else str(cid), text=text, kind=kind,
            labels=row_labels(row, where), parts=parts,
            submitted_at=_time(row.get("submitted_at"), f"{where}: submitted_at"),
            received_at=_time(row.get("received_at"), f"{where}: received_at"),
            key=str(row.get("response_id") or n)))
    return out


def load_corrections(path: str | Path) -> list[dict[str, Any]]:
    """Corrections exported to a JSONL or CSV file (optionally .gz), as plain dicts."""
    return [dict(r) for r in read_rows(Path(path))]


def correction_records(corrections: Iterable[Mapping[str, Any] | Correction]) -> list[Record]:
    """Corrections with labels as Records (one per complaint, the latest wins; split parts with
    their own text become rows of their own; "not a complaint" answers carry no label)."""
    records = []
    for c in _latest(_as_corrections(corrections)):
        records += _rows_of(c)
    return records


def _as_corrections(items: Iterable[Mapping[str, Any] | Correction]) -> list[Correction]:
    items = list(items)
    parsed = iter(parse_corrections([c for c in items if not isinstance(c, Correction)]))
    return [c if isinstance(c, Correction) else next(parsed) for c in items]


def _latest(corrections: Sequence[Correction]) -> list[Correction]:
    """One correction per complaint id, the latest submitted (stable for equal times)."""
    ordered = sorted(corrections, key=lambda c: _sortable(c.submitted_at))
    latest: dict[str, Correction] = {}
    for c in ordered:
        latest[c.complaint_id or f"#{c.key}"] = c
    return sorted(latest.values(), key=lambda c: _sortable(c.submitted_at))


def _rows_of(c: Correction, taxonomy_spaces: Mapping[str, set[str]] | None = None,
             dropped: Counter[str] | None = None) -> list[Record]:
    base = c.complaint_id or f"{CORRECTIONS_SOURCE}:{c.key}"
    if c.kind == "not_a_complaint":
        return []
    if c.kind == "split":
        rows = []
        for i, part in enumerate(c.parts):
            text = part.get("text")
            if isinstance(text, str) and normalize_text(text):
                labels = _in_space(row_labels(part, f"{base} part {i}"), taxonomy_spaces, dropped)
                if labels:
                    rows.append(Record(id=f"{base}#{i + 1}", text=normalize_text(text),
                                       labels=labels, source=CORRECTIONS_SOURCE, time=c.time,
                                       raw_text=text))
        return rows
    labels = _in_space(c.labels, taxonomy_spaces, dropped)
    text = normalize_text(c.text)
    if not labels or not text:
        return []
    return [Record(id=base, text=text, labels=labels, source=CORRECTIONS_SOURCE, time=c.time,
                   raw_text=c.text)]


def _in_space(labels: Mapping[str, str], spaces: Mapping[str, set[str]] | None,
           dropped: Counter[str] | None) -> dict[str, str]:
    if spaces is None:
        return dict(labels)
    kept = {}
    for head, value in labels.items():
        if head in spaces and value in spaces[head]:
            kept[head] = value
        elif dropped is not None:
            dropped[head] += 1
    return kept


def _time(value: Any, where: str) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise DataError(f"{where}: {value!r} is not an ISO time, e.g. "
                            "2018-04-02T09:30:00+08:00") from exc
    if not isinstance(value, datetime):
        raise DataError(f"{where}: expected a datetime or an ISO string, got {value!r}")
    # Dataset times are naive China time; store times are aware: one clock for both.
    return local_naive(value)


def _sortable(t: datetime | None) -> datetime:
    return t or datetime.min


# --- the training set ---------------------------------------------------------------------------

@dataclass
class SplitDataset(Dataset):
    """A Dataset whose splits are given, not computed from times: what `build_router` trains on
    when corrections (which may be newer than the frozen test split) join the training data."""

    splits: dict[str, list[Record]] = field(default_factory=dict)

    def split(self) -> dict[str, list[Record]]:
        return {name: list(rows) for name, rows in self.splits.items()}


@dataclass(frozen=True)
class Excluded:
    """A correction kept out of training, and why."""

    complaint_id: str | None
    reason: str


@dataclass
class TrainingSet:
    """The original splits with corrections applied; `dataset` goes to `build_router`."""

    dataset: SplitDataset
    overridden: list[str]  # ids whose original labels a correction replaced
    added: list[str]  # ids of new rows from corrections
    removed: list[str]  # ids dropped: "not a complaint", or split into parts
    excluded: list[Excluded]  # corrections not trained on
    dropped_labels: Counter[str]  # correction labels outside the label space, per head
    repeated_rows: int  # extra copies of recent rows (recent_weight)

    @property
    def train(self) -> list[Record]:
        return self.dataset.splits["train"]

    @property
    def dev(self) -> list[Record]:
        return self.dataset.splits.get("dev", [])

    @property
    def test(self) -> list[Record]:
        return self.dataset.splits.get("test", [])

    def summary(self) -> dict[str, Any]:
        return {"train": len(self.train), "dev": len(self.dev), "test": len(self.test),
                "overridden": len(self.overridden), "added": len(self.added),
                "removed": len(self.removed), "repeated_rows": self.repeated_rows,
                "excluded": [asdict(e) for e in self.excluded],
                "dropped_labels": dict(self.dropped_labels)}


def training_set(dataset: Dataset, corrections: Iterable[Mapping[str, Any] | Correction], *,
                 recent_weight: int = 1, recent_days: int = 30) -> TrainingSet:
    """The original data plus submitted corrections, with the test split frozen.

    - a correction overrides the labels of the record with the same complaint id (in train or
      dev; dev stays dev, with the better label); "not a complaint" removes the record and
      "split" replaces it with its parts that carry their own text;
    - corrections of unknown complaints become new training rows, timed when the complaint was
      received (else submitted);
    - corrections of a test-split complaint or of a test-split text, and new complaints whose
      text is in the dev split, are excluded and listed: the test split is never trained on, and
      dev stays honest for calibration;
    - with `recent_weight` > 1, training rows within `recent_days` of the newest row are repeated
      that many times in all (a weight by repetition, which every learner understands).
    """
    if recent_weight < 1:
        raise InvalidInput(f"recent_weight={recent_weight}: use 1 (no weighting) or more",
                           "recent_weight")
    if recent_days < 0:
        raise InvalidInput(f"recent_days={recent_days}: use 0 or more", "recent_days")
    splits = dataset.split()
    train, dev, test = (list(splits.get(n, [])) for n in ("train", "dev", "test"))
    spaces = {h: set(dataset.taxonomy.labels(h)) for h in dataset.heads}
    test_ids = {r.id for r in test}
    test_hashes = {r.text_hash for r in test}
    dev_hashes = {r.text_hash for r in dev}
    where = {r.id: ("dev", i) for i, r in enumerate(dev)}
    where.update({r.id: ("train", i) for i, r in enumerate(train)})
    rows = {"train": train, "dev": dev}
    overridden, added, removed, excluded = [], [], set(), []
    dropped: Counter[str] = Counter()
    for c in _latest(_as_corrections(corrections)):
        cid = c.complaint_id
        if cid is not None and cid in test_ids:
            excluded.append(Excluded(cid, "complaint is in the frozen test split"))
            continue
        if normalize_text(c.text) and text_hash(normalize_text(c.text)) in test_hashes:
            excluded.append(Excluded(cid, "same text as a complaint in the frozen test split"))
            continue
        if cid is not None and cid in where:
            name, i = where[cid]
            original = rows[name][i]
            if c.kind in ("not_a_complaint", "split"):
                removed.add(cid)
                for part in _rows_of(c, spaces, dropped):
                    if part.text_hash in test_hashes | dev_hashes:
                        excluded.append(Excluded(part.id, "part's text is in the test or dev "
                                                          "split"))
                    else:
                        train.append(part)
                        added.append(part.id)
                continue
            labels = _merge(original.labels, _in_space(c.labels, spaces, dropped))
            if labels == dict(original.labels):
                continue  # an accepted label: nothing changes
            rows[name][i] = replace(original, labels=labels)
            overridden.append(cid)
            continue
        new = _rows_of(c, spaces, dropped)
        if not new:
            excluded.append(Excluded(cid, "no text or no label in the label space"
                                     if c.kind != "not_a_complaint" else
                                     "not a complaint (and not in the original data)"))
        for r in new:
            if r.text_hash in dev_hashes:
                excluded.append(Excluded(r.id, "same text as a complaint in the dev split"))
            else:
                train.append(r)
                added.append(r.id)
    train = [r for r in train if r.id not in removed]
    dev = [r for r in dev if r.id not in removed]
    repeated = 0
    if recent_weight > 1:
        times = [r.time for r in train if r.time is not None]
        if times:
            cutoff = max(times) - timedelta(days=recent_days)
            recent = [r for r in train if r.time is not None and r.time >= cutoff]
            train += recent * (recent_weight - 1)
            repeated = len(recent) * (recent_weight - 1)
    split_rows = {"train": train, "dev": dev, "test": test}
    unique = list({id(r): r for part in split_rows.values() for r in part}.values())
    ds = SplitDataset(config=dataset.config, taxonomy=dataset.taxonomy, records=unique,
                      dropped_labels=Counter(dataset.dropped_labels), splits=split_rows)
    return TrainingSet(dataset=ds, overridden=overridden, added=added, removed=sorted(removed),
                       excluded=excluded, dropped_labels=dropped, repeated_rows=repeated)


def _merge(original: Mapping[str, str], new: Mapping[str, str]) -> dict[str, str]:
    merged = {**original, **new}
    sub, cat = merged.get("subcategory"), merged.get("category")
    if sub and cat and sub.split(KEY_SEPARATOR, 1)[0] != cat:
        del merged["subcategory"]  # the category was corrected alone: the old subcategory is wrong
    return merged


def hold_out_recent(dataset: Dataset, corrections: Iterable[Mapping[str, Any] | Correction],
                    share: float) -> tuple[list[Correction], list[Correction]]:
    """(to train on, to judge on): the newest `share` of corrections of new complaints (not in
    the dataset, no text of it) is kept out of training, so that "recent corrections" measure the
    candidate on data it has not seen. Corrections of dataset rows (audit fixes) always train."""
    if not 0 <= share < 1:
        raise InvalidInput(f"holdout share {share}: use a fraction in [0, 1), e.g. 0.2",
                           "holdout_share")
    latest = _latest(_as_corrections(corrections))
    known_ids = {r.id for r in dataset.records}
    known_texts = {r.text_hash for r in dataset.records}
    eligible = [i for i, c in enumerate(latest)
                if c.kind in ("accept", "correct") and c.labels
                and c.complaint_id not in known_ids
                and text_hash(normalize_text(c.text)) not in known_texts]
    n = math.floor(share * len(eligible))
    held = set(eligible[len(eligible) - n:]) if n else set()  # `latest` is oldest first
    return ([c for i, c in enumerate(latest) if i not in held],
            [c for i, c in enumerate(latest) if i in held])


# --- retrain ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RetrainConfig:
    """How corrections join the training data and how the candidate is judged."""

    recent_weight: int = 1  # copies of each recent training row (1: no weighting)
    recent_days: int = 30  # "recent": within this many days of the newest training row
    holdout_share: float = 0.2  # newest corrections of new complaints kept out to judge on
    gate: Gate = field(default_factory=Gate)

    def __post_init__(self) -> None:
        if self.recent_weight < 1:
            raise InvalidInput(f"recent_weight={self.recent_weight}: use 1 or more",
                               "recent_weight")
        if self.recent_days < 0:
            raise InvalidInput(f"recent_days={self.recent_days}: use 0 or more", "recent_days")
        if not 0 <= self.holdout_share < 1:
            raise InvalidInput(f"holdout_share={self.holdout_share}: use a fraction in [0, 1), "
                               "e.g. 0.2", "holdout_share")


@dataclass(frozen=True)
class RetrainResult:
    version: str
    bundle_path: Path
    comparison: Comparison
    report_dir: Path
    promoted: bool
    training: dict[str, Any]  # TrainingSet.summary() plus the held-out count


def retrain(dataset_yaml: str | Path | Dataset, corrections: Iterable[Mapping[str, Any]],
            bundles_dir: str | Path, config: FinetuneConfig, *, promote: bool,
            settings: RetrainConfig | None = None, options: BuildOptions | None = None,
            run_dir: Path | None = None, actor: str | None = None) -> RetrainResult:
    """training_set → build_router (the candidate, into `bundles_dir`) → compare with the active
    bundle → report in bundles/comparisons/<version>/ → promote if the gate passes and `promote`.
    """
    from dataclasses import replace

    from model.router import Router
    from training.pipeline import BuildOptions, build_router

    settings = settings or RetrainConfig()
    bundles_dir = Path(bundles_dir)
    dataset = dataset_yaml if isinstance(dataset_yaml, Dataset) else load_dataset(dataset_yaml)
    # Fail before hours of training if the active bundle cannot be found.
    current_path = (versions.active_bundle_path(bundles_dir)
                    if versions.active_version(bundles_dir) else None)
    to_train, held_out = hold_out_recent(dataset, corrections, settings.holdout_share)
    ts = training_set(dataset, to_train, recent_weight=settings.recent_weight,
                      recent_days=settings.recent_days)
    options = options or BuildOptions()
    version = options.version or f"{dataset.config.name}-{datetime.now():%Y%m%d-%H%M%S}"
    bundle = build_router(ts.dataset, config, bundles_dir, replace(options, version=version),
                          run_dir=run_dir)
    current = Router.load(current_path) if current_path is not None else None
    g = settings.gate
    comparison = compare(Router(bundle), current, ts.test, correction_records(held_out),
                         tolerance=g.tolerance, department_tolerance=g.department_tolerance,
                         min_support=g.min_support, significance=g.significance)
    report = write_comparison(comparison, versions.comparison_dir(bundles_dir, bundle.version))
    training = {**ts.summary(), "held_out_recent": len(held_out)}
    (report / "training.json").write_text(json.dumps(training, ensure_ascii=False, indent=1),
                                          encoding="utf-8")
    promoted = False
    if promote and comparison.passed:
        versions.promote(bundles_dir, bundle.version, actor=actor,
                         reason=f"passed its gate against {comparison.current}")
        promoted = True
    return RetrainResult(bundle.version, bundle.path, comparison, report, promoted, training)
