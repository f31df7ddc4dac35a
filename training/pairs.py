"""Labelled complaint pairs (same event or not) from real data; training/duplicates.py evaluates
a bundle's similarity on them.

    pairs = build_pairs(Path("data/haikou12345"), Path("../shared/data/teddy2020c"))

Where the labels come from (each rule is conservative: it prefers missing a pair to inventing one):

* **followup** (Haikou 12345, positive): a later ticket that cites an earlier one by its ticket id
  (`followup-pairs-*.jsonl`): the same problem reported again. The earlier text is taken from the
  tickets files by `ref_ticket_id` (the pairs file's own `ref_text` if the ticket is missing).
* **repeat_group** (Haikou, positive, exact): tickets with the same normalised text, paired with
  the previous one of their group in time, at most `MAX_GROUP_PAIRS` per group (one generic
  question asked 26 times must not dominate).
* **same_user_repost** (Teddy Cup 2020 C, positive): two messages of the same user whose titles
  are near-identical (difflib ratio >= 0.8 after folding punctuation) within 180 days.
* **same_title_place** (Teddy, positive): different users, identical folded titles of >= 8
  characters that name a place (a district/county like `A3区`, or a `…小区/路/村/…` name),
  within 90 days. A title naming only the city (`对A市公交线路的建议`) is not enough.
  Teddy pairs are scored on the message **bodies**: the labels come from the titles, so scoring
  the titles too would reward exactly the surface overlap the rule selected on.
* **hard_negative**: the positive's later text against a complaint of the same category (Haikou
  `cat2`) or the same district (Teddy) within 30 days that is not linked to it (not in its
  followup/repeat component, not the same text up to punctuation, no 4-character run shared by
  the titles for Teddy). **random_negative**: the same anchor against any unlinked complaint.
  `NEGATIVES_PER_POSITIVE` = 2 + 2, so positives are 20% of the near-duplicate pairs.

A pair is **exact** when both texts have the same normalised-text hash: serving finds those by
hash, so they are reported on their own and never enter the near-duplicate metrics.

Pairs are split by time, per source: those whose (later) complaint came in up to the median time
of that source's positives form the **calibration** half (the threshold is chosen there), the rest
the **evaluation** half (only reported). Everything is deterministic for a given seed.
"""

from __future__ import annotations

import difflib
import functools
import gzip
import json
import random
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from model.errors import DataError
from model.normalize import normalize_text, text_hash
from training.datasets import read_rows

POSITIVE_KINDS = ("followup", "repeat_group", "same_user_repost", "same_title_place")
NEGATIVE_KINDS = ("hard_negative", "random_negative")
SPLITS = ("calibration", "evaluation")
NEGATIVES_PER_POSITIVE = {"hard_negative": 2, "random_negative": 2}
MAX_GROUP_PAIRS = 5
NEGATIVE_WINDOW = timedelta(days=30)
SAME_USER_TITLE_RATIO = 0.8
SAME_USER_WINDOW = timedelta(days=180)
SAME_TITLE_WINDOW = timedelta(days=90)
SAME_TITLE_MIN_CHARS = 8
_FOLD = re.compile(r"[\W_]+")  # punctuation and spaces, for "same text up to punctuation"
_DISTRICT = re.compile(r"[A-Z]\d+[区县]")
_PLACE = re.compile(r"[A-Z]\d+[区县]|[\u4e00-\u9fff]{2,8}(?:小区|社区|花园|新城|大厦|广场|公寓|家园|"
                    r"村|镇|街道|路|大道|学校|小学|中学|大学|医院|公园|市场|中心|苑)")
_NOT_PLACES = ("线路", "道路", "公路", "马路", "出路", "思路", "套路", "电路", "网路", "水路")
_CITY = re.compile(r"[A-Z]\d*[市区县]")


@dataclass(frozen=True)
class Pair:
    """Two complaint texts and whether they report the same event (label 1) or not (0)."""

    a_text: str
    b_text: str
    label: int
    kind: str = "unknown"
    source: str = ""
    a_id: str = ""
    b_id: str = ""
    time: str = ""  # ISO time of the later complaint (the anchor for negatives)
    split: str = ""  # calibration | evaluation
    days_apart: float | None = None  # between the two complaints, where known

    @property
    def exact(self) -> bool:
        """Same normalised text: serving flags these by hash, whatever the similarity."""
        return _hash(self.a_text) == _hash(self.b_text)


# --- reading and writing --------------------------------------------------------------------------

def write_pairs(pairs: Iterable[Pair], path: Path) -> Path:
    """JSONL (gzipped if the name ends in .gz), one pair per line with all its fields."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    opener: Any = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as f:
        for p in pairs:
            f.write(json.dumps(asdict(p), ensure_ascii=False) + "\n")
    return path


def read_pairs(path: Path) -> list[Pair]:
    """Pairs from JSONL: `a_text`, `b_text`, `label` (0/1) required; the other fields optional."""
    pairs = []
    for n, row in enumerate(read_rows(Path(path)), 1):
        missing = [k for k in ("a_text", "b_text", "label") if k not in row]
        if missing:
            raise DataError(f"{path}:{n}: pair lacks {', '.join(missing)}; each line needs "
                            '{"a_text": ..., "b_text": ..., "label": 0 or 1}')
        if row["label"] not in (0, 1, True, False):
            raise DataError(f"{path}:{n}: label must be 0 or 1, got {row['label']!r}")
        fields: dict[str, Any] = {k: str(row[k]) for k in Pair.__dataclass_fields__
                                  if k in row and k not in ("label", "days_apart")}
        days = row.get("days_apart")
        pairs.append(Pair(label=int(row["label"]), **fields,
                          days_apart=None if days is None else float(days)))
    return pairs


# --- building -------------------------------------------------------------------------------------

def build_pairs(haikou_dir: Path, teddy_dir: Path | None = None, *, seed: int = 0) -> list[Pair]:
    """All labelled pairs from the Haikou tickets (and Teddy messages, if given), split by time.

    `haikou_dir` holds `tickets-*.jsonl[.gz]` and `followup-pairs-*.jsonl[.gz]` (the vendored
    data/haikou12345 or ../shared/data/haikou12345); `teddy_dir` holds
    `messages-unlabelled-fj3.jsonl[.gz]` (only in ../shared/data/teddy2020c).
    """
    rng = random.Random(seed)
    pairs = haikou_pairs(_haikou_tickets(haikou_dir), _haikou_followups(haikou_dir), rng)
    if teddy_dir is not None:
        pairs += teddy_pairs(_teddy_messages(teddy_dir), rng)
    return split_by_time(pairs)


@dataclass(frozen=True)
class _Item:
    id: str
    text: str  # what is compared
    time: datetime
    group: str  # negatives are drawn within the same group (category, district)
    user: str = ""
    title: str = ""

    @property
    def folded(self) -> str:
        return _fold(self.text)

    @property
    def usable(self) -> bool:
        return bool(_normalised(self.text))


def haikou_pairs(tickets: Sequence[Mapping[str, Any]], followups: Sequence[Mapping[str, Any]],
                 rng: random.Random) -> list[Pair]:
    """Followup positives, repeat-group positives and their negatives from Haikou rows."""
    items: dict[str, _Item] = {}
    for t in tickets:
        tid = str(t["ticket_id"])
        # tickets before February 2018 use an older category scheme: never mix the two
        scheme = "old" if tid[:6] < "201802" else "new"
        items[tid] = _Item(tid, str(t["text"]), _ticket_time(tid), f"{scheme}:{t.get('cat2') or ''}")
    links = _UnionFind()
    positives: list[tuple[_Item, _Item, str]] = []
    for f in followups:
        tid, ref = str(f["ticket_id"]), str(f["ref_ticket_id"])
        later = items.get(tid) or _Item(tid, str(f["text"]), _ticket_time(tid), "")
        earlier = items.get(ref) or _Item(ref, str(f.get("ref_text") or ""), _ticket_time(ref), "")
        if not later.usable or not earlier.usable:
            continue
        links.union(tid, ref)
        positives.append((later, earlier, "followup"))
    cited = {frozenset((a.id, b.id)) for a, b, _ in positives}
    for group in _groups_by(items.values(), lambda i: _normalised(i.text)):
        for a, b in group:
            links.union(a.id, b.id)
        group = [(a, b) for a, b in group if frozenset((a.id, b.id)) not in cited]
        positives += [(later, earlier, "repeat_group") for later, earlier in group[:MAX_GROUP_PAIRS]]
    return _with_negatives(positives, list(items.values()), links, "haikou12345", rng,
                           lambda anchor, c: True)


def teddy_pairs(messages: Sequence[Mapping[str, Any]], rng: random.Random) -> list[Pair]:
    """Repeat positives (same user, or same title and place) and negatives from Teddy messages."""
    items = []
    for m in messages:
        title, body = str(m.get("title") or ""), str(m.get("text") or "")
        if not _normalised(body):
            continue
        district = _DISTRICT.search(title) or _DISTRICT.search(body)
        items.append(_Item(str(m["id"]), body, _teddy_time(m), district.group() if district else "",
                           user=str(m.get("user") or ""), title=title))
    items.sort(key=lambda i: (i.time, i.id))
    links = _UnionFind()
    positives: list[tuple[_Item, _Item, str]] = []
    by_user: dict[str, list[_Item]] = defaultdict(list)
    by_title: dict[str, list[_Item]] = defaultdict(list)
    for item in items:  # in time order: each message is paired with its latest earlier match
        title = _fold(item.title)
        match = None
        for earlier in reversed(by_user[item.user]):
            if item.time - earlier.time > SAME_USER_WINDOW:
                break
            if difflib.SequenceMatcher(None, title, _fold(earlier.title)).ratio() \
                    >= SAME_USER_TITLE_RATIO:
                match = (earlier, "same_user_repost")
                break
        if match is None and len(title) >= SAME_TITLE_MIN_CHARS and _names_place(item.title):
            for earlier in reversed(by_title[title]):
                if item.time - earlier.time > SAME_TITLE_WINDOW:
                    break
                if earlier.user != item.user:
                    match = (earlier, "same_title_place")
                    break
        if match is not None:
            links.union(item.id, match[0].id)
            positives.append((item, match[0], match[1]))
        by_user[item.user].append(item)
        by_title[title].append(item)

    def unrelated(anchor: _Item, candidate: _Item) -> bool:
        return not (_runs(_strip_places(anchor.title)) & _runs(_strip_places(candidate.title)))

    return _with_negatives(positives, items, links, "teddy2020c", rng, unrelated)


def split_by_time(pairs: Sequence[Pair]) -> list[Pair]:
    """Each source's pairs up to the median time of its positives → calibration, later ones →
    evaluation. Pairs without a time are split by their order (first half calibration)."""
    out = []
    by_source: dict[str, list[Pair]] = defaultdict(list)
    for p in pairs:
        by_source[p.source].append(p)
    for group in by_source.values():
        timed = [p.time for p in group if p.label == 1 and p.time]
        if timed:
            cut = sorted(timed)[(len(timed) - 1) // 2]
            out += [replace(p, split=SPLITS[0] if p.time <= cut else SPLITS[1]) for p in group]
        else:
            half = (len(group) + 1) // 2
            out += [replace(p, split=SPLITS[0] if i < half else SPLITS[1])
                    for i, p in enumerate(group)]
    return out


def summarize(pairs: Sequence[Pair]) -> dict[str, Any]:
    """Pair counts per split, kind and exactness."""
    out: dict[str, Any] = {}
    for split in SPLITS:
        rows = [p for p in pairs if p.split == split]
        kinds: dict[str, int] = defaultdict(int)
        for p in rows:
            kinds[p.kind + (" (exact)" if p.exact else "")] += 1
        out[split] = {"pairs": len(rows), "positives": sum(p.label for p in rows),
                      "exact": sum(p.exact for p in rows), "kinds": dict(sorted(kinds.items()))}
    return out


def _with_negatives(positives: list[tuple[_Item, _Item, str]], pool: list[_Item],
                    links: _UnionFind, source: str, rng: random.Random,
                    unrelated: Callable[[_Item, _Item], bool]) -> list[Pair]:
    """The positives as Pairs, each near (non-exact) one followed by its negatives."""
    by_group: dict[str, list[_Item]] = defaultdict(list)
    for item in pool:
        if item.group and item.usable:
            by_group[item.group].append(item)
    usable = [i for i in pool if i.usable]
    out = []
    for later, earlier, kind in positives:
        pair = Pair(later.text, earlier.text, 1, kind, source, later.id, earlier.id,
                    later.time.isoformat(), days_apart=_days(later, earlier))
        out.append(pair)
        if pair.exact:
            continue

        def ok(c: _Item, anchor: _Item = later, partner: _Item = earlier) -> bool:
            return (c.id not in (anchor.id, partner.id) and not links.same(c.id, anchor.id)
                    and c.folded != anchor.folded and unrelated(anchor, c))

        near = [c for c in by_group.get(later.group, ())
                if abs(c.time - later.time) <= NEGATIVE_WINDOW and ok(c)]
        picks = {"hard_negative": rng.sample(near, min(len(near),
                                                       NEGATIVES_PER_POSITIVE["hard_negative"]))}
        randoms: list[_Item] = []
        while len(randoms) < NEGATIVES_PER_POSITIVE["random_negative"]:
            c = rng.choice(usable)
            if ok(c) and c not in randoms:
                randoms.append(c)
        picks["random_negative"] = randoms
        for neg_kind, chosen in picks.items():
            out += [Pair(later.text, c.text, 0, neg_kind, source, later.id, c.id,
                         later.time.isoformat(), days_apart=_days(later, c)) for c in chosen]
    return out


def _groups_by(items: Iterable[_Item], key: Callable[[_Item], str]) -> list[list[tuple[_Item, _Item]]]:
    """Per key with several items: (later, previous) pairs in time order."""
    groups: dict[str, list[_Item]] = defaultdict(list)
    for item in items:
        k = key(item)
        if k:
            groups[k].append(item)
    out = []
    for k in sorted(groups):
        members = sorted(groups[k], key=lambda i: (i.time, i.id))
        if len(members) > 1:
            out.append([(members[i], members[i - 1]) for i in range(1, len(members))])
    return out


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        self.parent[self.find(a)] = self.find(b)

    def same(self, a: str, b: str) -> bool:
        return self.find(a) == self.find(b)


@functools.lru_cache(maxsize=1 << 16)
def _days(a: _Item, b: _Item) -> float:
    return round(abs((a.time - b.time).total_seconds()) / 86400, 3)


def _normalised(text: str) -> str:
    return normalize_text(text)


@functools.lru_cache(maxsize=1 << 16)
def _hash(text: str) -> str:
    return text_hash(text)


@functools.lru_cache(maxsize=1 << 16)
def _fold(text: str) -> str:
    return _FOLD.sub("", unicodedata.normalize("NFKC", _normalised(text)))


def _names_place(title: str) -> bool:
    return any(not m.group().endswith(_NOT_PLACES)
               for m in _PLACE.finditer(unicodedata.normalize("NFKC", title)))


def _strip_places(title: str) -> str:
    return _CITY.sub("", _fold(title))


def _runs(text: str, n: int = 4) -> set[str]:
    return {text[i:i + n] for i in range(len(text) - n + 1)}


def _ticket_time(ticket_id: str) -> datetime:
    try:
        return datetime.strptime(ticket_id[:8], "%Y%m%d").replace(tzinfo=UTC)
    except ValueError:
        raise DataError(f"ticket id {ticket_id!r} does not start with a date (YYYYMMDD)") from None


def _teddy_time(message: Mapping[str, Any]) -> datetime:
    value = str(message.get("time") or "").strip()
    for fmt in ("%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y/%m/%d", "%Y-%m-%d"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise DataError(f"message {message.get('id')!r}: time {value!r} is not like 2019/2/28 11:25:05")


def _one_file(directory: Path, pattern: str) -> list[Path]:
    found = sorted(Path(directory).glob(pattern + ".jsonl")) + \
        sorted(Path(directory).glob(pattern + ".jsonl.gz"))
    names, out = set(), []
    for path in found:  # a .jsonl and its .jsonl.gz copy are the same data: read one
        stem = path.name.removesuffix(".gz")
        if stem not in names:
            names.add(stem)
            out.append(path)
    if not out:
        raise DataError(f"no {pattern}.jsonl[.gz] in {directory}: point at data/haikou12345 or "
                        "../shared/data/haikou12345 (teddy: ../shared/data/teddy2020c)")
    return out


def _haikou_tickets(directory: Path) -> list[dict[str, Any]]:
    return [row for path in _one_file(directory, "tickets-*") for row in read_rows(path)]


def _haikou_followups(directory: Path) -> list[dict[str, Any]]:
    return [row for path in _one_file(directory, "followup-pairs-*") for row in read_rows(path)]


def _teddy_messages(directory: Path) -> list[dict[str, Any]]:
    return [row for path in _one_file(directory, "messages-unlabelled-fj3")
            for row in read_rows(path)]


# --- where the data is -----------------------------------------------------------------------------

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"


def default_sources() -> tuple[Path, Path | None]:
    """The shared data folder if present (it has the Teddy messages), else the vendored copies
    (Haikou only: the unlabelled Teddy messages are not vendored)."""
    haikou = SHARED / "haikou12345"
    if not haikou.is_dir():
        haikou = REPO / "data" / "haikou12345"
    teddy = SHARED / "teddy2020c"
    has_teddy = teddy.is_dir() and any(teddy.glob("messages-unlabelled-fj3.jsonl*"))
    return haikou, teddy if has_teddy else None
