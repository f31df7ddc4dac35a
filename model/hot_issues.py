"""Hot issues (热点问题): complaints grouped into one issue per real-world event, ranked by heat.

    issues = group(reports, score, threshold=0.5)     # incremental, in time order
    ranked = rank(issues, now)                        # hottest first

Grouping is incremental, as complaints arrive: each report, in time order (ties by id, so the
same input gives the same issues), is scored against the recent members of every issue still
open (last report within `window`) and joins the issue of its best-scoring member if that score
reaches `threshold` (the bundle's same-event threshold); otherwise it opens a new issue. `score`
is the duplicate score of a report against earlier reports (the pair model's probability,
model/pair_model.py), so an issue is one event, not one topic.

Heat, documented so a leader can read it: reports count first, distinct reporters more (one
person posting five times is not five people), public reactions where the channel has them
(likes + dislikes), and recency: a half-life of `half_life_days` from the issue's last report,
30 days by default, the grouping window. With 7 days, single messages of the last day outranked
a nine-report issue:

    heat = (ln(1 + reports) + ln(1 + reporters) + 0.5 · ln(1 + reactions)) · 2^(−age / half-life)
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

MEMBERS_COMPARED = 20  # the latest members of an issue a new report is scored against


@dataclass(frozen=True)
class Report:
    id: str
    text: str
    time: datetime
    reporter: str | None = None
    reactions: int = 0  # likes + dislikes, where the channel has them
    place: str | None = None  # the location the intake system gave, if any


@dataclass
class Issue:
    id: str
    reports: list[Report] = field(default_factory=list)

    @property
    def first(self) -> datetime:
        return self.reports[0].time

    @property
    def last(self) -> datetime:
        return self.reports[-1].time

    @property
    def reporters(self) -> int:
        known = {r.reporter for r in self.reports if r.reporter}
        return len(known) + sum(1 for r in self.reports if not r.reporter)

    def heat(self, now: datetime, half_life_days: float = 30.0) -> float:
        age = max(0.0, (now - self.last).total_seconds() / 86400)
        reactions = sum(max(0, r.reactions) for r in self.reports)
        return (math.log1p(len(self.reports)) + math.log1p(self.reporters)
                + 0.5 * math.log1p(reactions)) * 2 ** (-age / half_life_days)


# score(report, earlier reports) -> one duplicate score per earlier report
Score = Callable[[Report, Sequence[Report]], Sequence[float]]


def group(reports: Sequence[Report], score: Score, *, threshold: float,
          window: timedelta = timedelta(days=30)) -> list[Issue]:
    """Issues in the order they were opened (see the module docstring)."""
    issues: list[Issue] = []
    for report in sorted(reports, key=lambda r: (r.time, r.id)):
        open_ = [i for i in issues if report.time - i.last <= window]
        members = [(i, m) for i in open_ for m in i.reports[-MEMBERS_COMPARED:]]
        best, best_score = None, threshold
        if members:
            scores = score(report, [m for _, m in members])
            for (issue, _), s in zip(members, scores, strict=True):
                if s >= best_score:
                    best, best_score = issue, s
        if best is None:
            best = Issue(id=f"H{len(issues) + 1:04d}")
            issues.append(best)
        best.reports.append(report)
    return issues


def rank(issues: Sequence[Issue], now: datetime) -> list[Issue]:
    """Hottest first; ties by the earlier first report, then id."""
    return sorted(issues, key=lambda i: (-i.heat(now), i.first, i.id))


CANDIDATES = 30  # members scored by the pair model: the nearest by embedding


def router_score(router: Any, reports: Sequence[Report]) -> tuple[Score, float]:
    """The bundle's duplicate score of a report against earlier ones, and its same-event
    threshold: the pair model of its duplicates.json (else the blend of the two cosines), on
    the `CANDIDATES` nearest by embedding (the rest score 0), as the similarity index does."""
    from model.lexical import blend
    from model.pair_model import PairModel

    record = router.bundle.duplicate_thresholds() or {}
    model = PairModel.from_dict(record["pair_model"]) if "pair_model" in record else None
    threshold = float(record.get("same_event", 0.49))
    vectors = np.asarray(router.embed([r.text for r in reports]), np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    row = {r.id: i for i, r in enumerate(reports)}

    def score(report: Report, earlier: Sequence[Report]) -> list[float]:
        cosines = vectors[[row[e.id] for e in earlier]] @ vectors[row[report.id]]
        out = np.zeros(len(earlier))
        near = np.argsort(-cosines, kind="stable")[:CANDIDATES]
        if model is None:
            out[near] = blend(cosines[near], np.array(
                [router.lexical.cosine(report.text, earlier[j].text) for j in near]))
        else:
            days = [(report.time - earlier[j].time).total_seconds() / 86400 for j in near]
            out[near] = model.score(cosines[near], router.lexical, report.text,
                                    [earlier[j].text for j in near], days)
        return out.tolist()

    return score, threshold


def place_of(issue: Issue) -> str:
    """The location most of its reports were given, else the place most of their texts name ("" if
    none); ties go to the place named first, so the same reports always give the same answer."""
    from model.pair_model import places

    given = Counter(r.place for r in issue.reports if r.place)
    named = given or Counter(p for r in issue.reports
                             for p in sorted(places(r.text), key=lambda p: (r.text.find(p), p)))
    return named.most_common(1)[0][0] if named else ""


def description_of(issue: Issue) -> str:
    """Its first report's first sentence (the title, for board messages), at most 60 characters."""
    return re.split(r"[。!?！？]", issue.reports[0].text, maxsplit=1)[0][:60]


def issue_table(ranked: Sequence[Issue], now: datetime, top: int) -> list[dict[str, Any]]:
    """The Teddy Cup hot-issue table: 热度排名, 问题ID, 热度指数, 时间范围, 地点/人群, 问题描述."""
    return [{"热度排名": rank_, "问题ID": issue.id, "热度指数": round(issue.heat(now), 3),
             "时间范围": f"{issue.first:%Y/%m/%d} 至 {issue.last:%Y/%m/%d}",
             "地点/人群": place_of(issue), "问题描述": description_of(issue)}
            for rank_, issue in enumerate(ranked[:top], 1)]


def detail_table(ranked: Sequence[Issue], top: int) -> list[dict[str, Any]]:
    """The Teddy Cup detail table: 问题ID → 留言编号, 留言用户, 留言时间, 留言详情, 点赞数/反对数 (sum)."""
    return [{"问题ID": issue.id, "留言编号": r.id, "留言用户": r.reporter or "",
             "留言时间": f"{r.time:%Y/%m/%d %H:%M:%S}", "留言详情": r.text,
             "点赞数+反对数": r.reactions}
            for issue in ranked[:top] for r in issue.reports]
