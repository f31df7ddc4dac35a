"""Rules of the duty list that serving and training share: time limits and due dates, label keys
given as rows carry them, and checking labels against the list with suggestions for typos.

    due_date(received_at, "5wd")                       # working days, China time
    row_labels({"category": "城乡建设", "subcategory": "物业管理"}, "row 3")   # → key form
    check_labels(taxonomy, {"department": "城管具"}, "")  # InvalidInput: did you mean '城管局'?
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from model.errors import DataError, InvalidInput
from model.taxonomy import HEADS, KEY_SEPARATOR, LOCAL_TIME, Taxonomy, subcategory_key

# Review deadline when the duty list gives no time limit for the suggested subcategory.
DEFAULT_TIME_LIMIT = timedelta(days=3)
_DURATION = re.compile(r"^(\d{1,6}(?:\.\d{1,3})?)(min|h|d|wd)$")
_UNITS = {"min": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}


def parse_duration(text: str, *, working_days: bool = True) -> tuple[float, str] | None:
    """'30min', '24h', '3d', '5wd' (working days, when allowed) → (amount, unit); None if not."""
    match = _DURATION.match(text.strip())
    if match is None or (match.group(2) == "wd" and not working_days):
        return None
    return float(match.group(1)), match.group(2)


def duration(text: str, name: str) -> timedelta:
    """A calendar duration such as 30min, 2h or 3d; InvalidInput names the field otherwise."""
    parsed = parse_duration(text, working_days=False)
    if parsed is None:
        raise InvalidInput(f"{name} {text!r} is not a number and a unit (min, h or d), e.g. "
                           "30min, 2h, 3d", field=name)
    return parsed[0] * _UNITS[parsed[1]]


def due_date(received_at: datetime, time_limit: str | None,
             default: timedelta = DEFAULT_TIME_LIMIT) -> datetime:
    """When a complaint received at `received_at` is due under a duty-list time limit such as
    30min, 24h, 3d (calendar days) or 5wd (working days, Monday to Friday, China time)."""
    if not time_limit:
        return received_at + default
    parsed = parse_duration(time_limit)
    if parsed is None:
        raise InvalidInput(f"time limit {time_limit!r} is not a number and a unit (min, h, d or "
                           "wd), e.g. 30min, 24h, 5wd", field="time_limit")
    amount, unit = parsed
    if unit != "wd":
        return received_at + amount * _UNITS[unit]
    local = received_at.astimezone(LOCAL_TIME)
    whole = math.floor(amount)
    while whole > 0:
        local += timedelta(days=1)
        if local.weekday() < 5:
            whole -= 1
    local += timedelta(days=amount - math.floor(amount))
    return local.astimezone(UTC)


def row_labels(row: Mapping[str, Any], where: str) -> dict[str, str]:
    """The labels a data row gives, with the subcategory as its key `category/subcategory`: a bare
    subcategory name needs the row's category (DataError says so), and a key gives the category."""
    labels = {h: str(row[h]).strip() for h in HEADS if row.get(h) not in (None, "")}
    sub = labels.get("subcategory")
    if sub and not sub.startswith(labels.get("category", "\0") + KEY_SEPARATOR):
        if "category" in labels:
            labels["subcategory"] = subcategory_key(labels["category"], sub)
        elif KEY_SEPARATOR not in sub:
            raise DataError(f"{where}: subcategory {sub!r} needs its category: write "
                            f"`category{KEY_SEPARATOR}subcategory` or add `category`")
    if "subcategory" in labels and "category" not in labels:
        labels["category"] = labels["subcategory"].split(KEY_SEPARATOR, 1)[0]
    return labels


def resolve_subcategory(taxonomy: Taxonomy, value: str, category: str | None) -> str:
    """The duty-list key for a subcategory given as a key or as a bare name under `category`."""
    if value not in taxonomy.subcategories and category \
            and subcategory_key(category, value) in taxonomy.subcategories:
        return subcategory_key(category, value)
    return value


def check_labels(taxonomy: Taxonomy, labels: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Each label known to the duty list, and the subcategory under the category (InvalidInput
    names the field, `where` + head, and suggests close names)."""
    out: dict[str, Any] = {}
    for head in HEADS:
        value = labels.get(head)
        if value is not None and not isinstance(value, str):
            raise InvalidInput(f"{head} must be a string, got {value!r}", field=where + head)
        out[head] = value or None
    category, subcategory, department = out["category"], out["subcategory"], out["department"]
    if category is not None and category not in taxonomy.categories:
        raise InvalidInput(f"category {category!r} is not in duty list {taxonomy.name!r}"
                           + did_you_mean(category, taxonomy.categories),
                           field=where + "category")
    if subcategory is not None:
        keys = taxonomy.subcategories
        subcategory = resolve_subcategory(taxonomy, subcategory, category)
        if subcategory not in keys:
            raise InvalidInput(f"subcategory {subcategory!r} is not in duty list "
                               f"{taxonomy.name!r}; give the key category{KEY_SEPARATOR}"
                               "subcategory" + did_you_mean(subcategory, keys),
                               field=where + "subcategory")
        parent = taxonomy.parent(subcategory)
        if category is not None and parent != category:
            raise InvalidInput(f"subcategory {subcategory!r} belongs to category {parent!r}, "
                               f"not {category!r}", field=where + "subcategory")
        out["subcategory"], out["category"] = subcategory, parent
    if department is not None and department not in taxonomy.departments:
        raise InvalidInput(f"department {department!r} is not in duty list {taxonomy.name!r}"
                           + did_you_mean(department, taxonomy.departments),
                           field=where + "department")
    return out


def did_you_mean(value: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(value, list(options), n=3, cutoff=0.5)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
