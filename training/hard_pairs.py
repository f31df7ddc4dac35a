"""The hard duplicate pairs: close in wording and topic, labelled by reading them.

    candidates = draw_candidates(*default_sources())   # what was given to the readers
    pairs = load_hard_pairs()                          # data/pairs/hard-pairs.jsonl + texts

How the candidates were drawn (deterministic for a seed): texts are the normalised complaint
texts (model/normalize.py); similarity is the cosine of char 1–3-gram TF-IDF (sublinear tf,
fitted on the source's own texts), i.e. the baseline the served score must beat, so the set is
hard for exactly that baseline. Identical normalised texts are left out (serving finds repeats by
hash; since the hash folds punctuation, 19 pairs of the set are now such exact repeats too).

* **Haikou 12345** (Feb–Apr 2018 tickets): pairs of the same subcategory (`cat2/cat3`) received
  within 14 days of each other, in four cosine bands (0.35–0.5, 0.5–0.65, 0.65–0.8, ≥ 0.8),
  80 per band, at most 2 pairs per ticket.
* **Teddy Cup 2020 C** (`messages-unlabelled-fj3`, 4,306 messages): pairs of messages within 30
  days of each other, title + body, in the same bands, 30 per band.

* **Grouping links** (Teddy, 75 pairs, `drawn` says which): the links `huying hot-issues` made
  on the 4,306 messages (each report and the member of the issue it joined), 40 drawn at random
  (`random.Random(0)`) from the links of a pair model with shared rare trigrams that chained
  unrelated complaints, and 40 from those of the eight-feature model then served (5 were in the
  set already). They bring what the candidates lack: long same-period complaints of one genre
  (housing, schools) that are different events.

Each pair was then read and labelled `same_event` (the same real-world event: the same site,
shop, road, company or person's case), `same_type` (the same kind of problem, elsewhere or
another case) or `unrelated`, with a one-line reason. Only ids, labels and reasons are kept in
the repository; the texts are joined back from the sources. Pairs split by time at the median of
the later complaint's time, per source: `earlier` (for fitting) and `later` (for judging).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from model.errors import DataError
from model.normalize import normalize_text
from training.pairs import (
    REPO,
    Pair,
    _haikou_tickets,
    _teddy_messages,
    _teddy_time,
    _ticket_time,
)

LABELS = ("same_event", "same_type", "unrelated")
BANDS = (0.35, 0.5, 0.65, 0.8, 1.01)
PER_BAND = {"haikou12345": 80, "teddy2020c": 30}
WINDOW_DAYS = {"haikou12345": 14, "teddy2020c": 30}
PATH = REPO / "data" / "pairs" / "hard-pairs.jsonl"


@dataclass(frozen=True)
class Item:
    id: str
    text: str
    time: datetime
    group: str  # the subcategory (Haikou) or "" (Teddy): candidates share it


@dataclass(frozen=True)
class HardPair:
    pair_id: str
    source: str
    a: Item
    b: Item
    label: str = ""
    reason: str = ""
    half: str = ""  # "earlier" or "later"

    @property
    def same_event(self) -> bool:
        return self.label == "same_event"


def items(haikou_dir: Path, teddy_dir: Path | None) -> dict[str, list[Item]]:
    out = {"haikou12345": [Item(str(t["ticket_id"]), normalize_text(str(t["text"])),
                                _ticket_time(str(t["ticket_id"])), f"{t['cat2']}/{t['cat3']}")
                           for t in _haikou_tickets(haikou_dir)
                           if str(t["ticket_id"])[:6] >= "201802" and t.get("cat3")]}
    if teddy_dir is not None:
        out["teddy2020c"] = [Item(str(m["id"]), normalize_text(f"{m.get('title', '')}。{m['text']}"),
                                  _teddy_time(m), "") for m in _teddy_messages(teddy_dir)]
    return out


def draw_candidates(haikou_dir: Path, teddy_dir: Path | None, seed: int = 0) -> list[HardPair]:
    """The unlabelled candidate pairs (see the module docstring)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    rng = random.Random(seed)
    out: list[HardPair] = []
    for source, rows in items(haikou_dir, teddy_dir).items():
        rows = sorted({r.id: r for r in rows}.values(), key=lambda r: (r.time, r.id))
        x = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True,
                            min_df=2).fit_transform([r.text for r in rows])
        sims = (x @ x.T).tocoo()
        window = WINDOW_DAYS[source] * 86400
        bands: list[list[tuple[int, int, float]]] = [[] for _ in BANDS[:-1]]
        for i, j, s in zip(sims.row, sims.col, sims.data, strict=True):
            if i >= j or s < BANDS[0] or rows[i].text == rows[j].text or rows[i].group != rows[j].group:
                continue
            if abs((rows[i].time - rows[j].time).total_seconds()) > window:
                continue
            which = int(np.searchsorted(BANDS, s, side="right")) - 1
            bands[which].append((int(i), int(j), float(s)))
        for band in bands:
            rng.shuffle(band)
            used: dict[int, int] = {}
            taken = 0
            for i, j, _ in band:
                if taken == PER_BAND[source]:
                    break
                if used.get(i, 0) >= 2 or used.get(j, 0) >= 2:
                    continue
                used[i], used[j] = used.get(i, 0) + 1, used.get(j, 0) + 1
                out.append(HardPair(f"{source}:{rows[i].id}:{rows[j].id}", source, rows[i], rows[j]))
                taken += 1
    return out


def load_hard_pairs(path: Path = PATH, haikou_dir: Path | None = None,
                    teddy_dir: Path | None = None) -> list[HardPair]:
    """The labelled pairs with their texts joined back from the sources, split into halves."""
    from training.pairs import default_sources

    if haikou_dir is None:
        haikou_dir, teddy_dir = default_sources()
    if not path.is_file():
        raise DataError(f"{path} does not exist: the hard pair set is kept in data/pairs/")
    by_id = {(s, r.id): r for s, rows in items(haikou_dir, teddy_dir).items() for r in rows}
    pairs = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        row: dict[str, Any] = json.loads(line)
        if row.get("label") not in LABELS:
            raise DataError(f"{path}:{n}: label {row.get('label')!r} is not one of {LABELS}")
        a, b = by_id.get((row["source"], row["a"])), by_id.get((row["source"], row["b"]))
        if a is None or b is None:
            continue  # a source that is not on this machine (Teddy's messages)
        pairs.append(HardPair(row["pair_id"], row["source"], a, b, row["label"], row["reason"]))
    return split_halves(pairs)


def split_halves(pairs: Sequence[HardPair]) -> list[HardPair]:
    out = []
    for source in sorted({p.source for p in pairs}):
        mine = [p for p in pairs if p.source == source]
        later = sorted(max(p.a.time, p.b.time) for p in mine)
        median = later[len(later) // 2]
        out += [HardPair(p.pair_id, p.source, p.a, p.b, p.label, p.reason,
                         "later" if max(p.a.time, p.b.time) >= median else "earlier")
                for p in mine]
    return out


def as_pairs(pairs: Sequence[HardPair]) -> list[Pair]:
    """The evaluation's pair type (training/pairs.py): label 1 for `same_event`; the earlier half
    calibrates (thresholds), the later half is judged."""
    return [Pair(a_text=p.a.text, b_text=p.b.text, label=int(p.same_event), kind=p.label,
                 source=p.source, a_id=p.a.id, b_id=p.b.id,
                 time=max(p.a.time, p.b.time).isoformat(),
                 split="calibration" if p.half == "earlier" else "evaluation",
                 days_apart=abs((p.a.time - p.b.time).total_seconds()) / 86400) for p in pairs]
