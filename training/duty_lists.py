"""Build the vendored duty lists from their source data (re-run with `huying data build-duty-lists`).

Haikou: category = `cat2`, subcategory = `cat3` under its `cat2`, default department = the most
frequent `dept` of that subcategory's tickets; departments = every `dept` seen in the tickets.
Teddy: category = level 1, subcategory = `level2·level3` (level-3 names repeat under a level 2).
Neither source states time limits or legal bases, so those cells stay empty.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from pathlib import Path

from model.taxonomy import DutyEntry, Taxonomy
from training.datasets import read_rows


def haikou_duty_list(current: Path, older: Path | None = None) -> Taxonomy:
    rows = list(read_rows(current))
    per_sub: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    categories: Counter[str] = Counter()
    for r in rows:
        cat, sub, dept = r.get("cat2", ""), r.get("cat3", ""), r.get("dept", "")
        if cat and sub:
            categories[cat] += 1
            per_sub[(cat, sub)].update([dept] if dept else [])
    all_depts = Counter(r["dept"] for r in rows if r.get("dept"))
    if older is not None:
        all_depts.update(r["dept"] for r in read_rows(older) if r.get("dept"))
    entries = [DutyEntry(category=cat, subcategory=sub,
                         department=(c.most_common(1)[0][0] if c else ""))
               for (cat, sub), c in sorted(per_sub.items(), key=lambda kv: -sum(kv[1].values()))]
    return Taxonomy(name="haikou12345", categories=tuple(c for c, _ in categories.most_common()),
                    departments=tuple(d for d, _ in all_depts.most_common()),
                    entries=tuple(entries))


def teddy_duty_list(taxonomy_csv: Path) -> Taxonomy:
    with open(taxonomy_csv, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    categories = list(dict.fromkeys(r["level1"] for r in rows))
    entries = [DutyEntry(category=r["level1"], subcategory=f"{r['level2']}·{r['level3']}")
               for r in rows]
    return Taxonomy(name="teddy2020c", categories=tuple(categories), departments=(),
                    entries=tuple(entries))
