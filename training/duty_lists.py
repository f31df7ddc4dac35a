"""Build the vendored duty lists from their source data (re-run with `huying data build-duty-lists`).

Haikou: category = `cat2`, subcategory = `cat3` under its `cat2`, default department = the most
frequent `dept` of that subcategory's tickets; departments = every `dept` seen in the tickets.
Teddy: category = level 1, subcategory = `level2·level3` (level-3 names repeat under a level 2).

Time limits are mined, never assumed: the Haikou operators write the rule into the ticket when they
dispatch it ("（请职能局按规定在30分钟内联系市民，响应处置）"), and `model/normalize.py` strips that
before training. An entry gets the limit that at least MIN_STATED of the tickets of its subcategory
and default department state (the most stated one); `time_limits.csv` keeps the counts of every
(subcategory, department, limit) as provenance. No source states legal bases: those cells stay empty.
"""

from __future__ import annotations

import csv
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from model.taxonomy import DutyEntry, Taxonomy
from training.datasets import read_rows

MIN_STATED = 2
# "请职能局按规定在30分钟内…", "请…按照规定30分钟响应…", "请…在5个工作日内办结": the operator's rule
_STATED = re.compile(r"(?<!申)请[^，。；！？（）()\d]{0,14}?(规定|在)?\s*"
                     r"(\d{1,4}|[一二两三四五六七八九十百]{1,4})\s*(分钟|小时|个?工作日|天|日)(内)?")
_UNITS = {"分钟": "min", "小时": "h", "工作日": "wd", "个工作日": "wd", "天": "d", "日": "d"}
_DIGITS = {c: i for i, c in enumerate("零一二三四五六七八九")} | {"两": 2}


def chinese_number(text: str) -> int:
    """'30' → 30, '三十' → 30, '十五' → 15, '两' → 2, '一百二十' → 120."""
    if text.isdigit():
        return int(text)
    total, digit = 0, 0
    for char in text:
        if char in _DIGITS:
            digit = _DIGITS[char]
        else:  # 十 or 百
            total += (digit or 1) * (10 if char == "十" else 100)
            digit = 0
    return total + digit


def stated_time_limits(text: str) -> list[str]:
    """The time limits an operator's instruction in a raw ticket states, as duty-list values
    ('30min', '5wd'), each once, in order."""
    found = (f"{chinese_number(n)}{_UNITS[u]}" for rule, n, u, within in _STATED.findall(text)
             if rule or within)  # not "请了一天假"
    return list(dict.fromkeys(found))


@dataclass(frozen=True)
class StatedLimit:
    """How many of the tickets of one (category, subcategory, department) state one limit."""

    category: str
    subcategory: str
    department: str
    time_limit: str
    stated: int
    tickets: int


def mine_time_limits(rows: Iterable[Mapping[str, Any]]) -> list[StatedLimit]:
    """Every limit the raw tickets state, per (cat2, cat3, dept), most stated first."""
    tickets: Counter[tuple[str, str, str]] = Counter()
    stated: dict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)
    for r in rows:
        key = (r.get("cat2", ""), r.get("cat3", ""), r.get("dept", ""))
        if all(key):
            tickets[key] += 1
            stated[key].update(stated_time_limits(str(r.get("text", ""))))
    found = [StatedLimit(*key, limit, n, tickets[key])
             for key, limits in stated.items() for limit, n in limits.items()]
    return sorted(found, key=lambda s: (-s.stated, s.category, s.subcategory, s.department,
                                        s.time_limit))


def write_time_limits(found: Iterable[StatedLimit], path: Path) -> None:
    columns = ("category", "subcategory", "department", "time_limit", "stated", "tickets")
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([getattr(s, c) for c in columns] for s in found)


def with_time_limits(taxonomy: Taxonomy, found: Iterable[StatedLimit]) -> Taxonomy:
    """Each entry with the limit most stated for its subcategory and default department, if
    at least MIN_STATED tickets state it."""
    best: dict[tuple[str, str, str], StatedLimit] = {}
    for s in found:
        key = (s.category, s.subcategory, s.department)
        if s.stated >= MIN_STATED and (key not in best or s.stated > best[key].stated):
            best[key] = s
    entries = tuple(replace(e, time_limit=best[k].time_limit) if (k := (
        e.category, e.subcategory, e.department)) in best else e for e in taxonomy.entries)
    return replace(taxonomy, entries=entries)


def haikou_duty_list(current: Path, older: Path | None = None) -> Taxonomy:
    """The Haikou duty list without time limits (`with_time_limits` adds them)."""
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
