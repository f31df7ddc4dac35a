"""Reminder letters (提醒函): one department's period, from stored numbers only — its statistics
(serving/stats.py), its early warnings (serving/warnings.py), the events its complaints repeat
(hot issues) and its overdue cases, each with example complaints. Rendered as Markdown, HTML or
PDF (serving/letter_pdf.py).

    letter = build_letter(session, "城市管理行政执法局", since, until, zone, districts)
    letter.markdown(); letter.html(); letter_pdf.render(letter)
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from model.errors import NotFound
from serving import hot_issues, stats
from serving.store import service

EXCERPT = 60  # characters of an example complaint
MAX_ITEMS = 10  # per section


@dataclass
class Section:
    title: str
    items: list[str] = field(default_factory=list)
    empty: str = "本期无。"


@dataclass
class Letter:
    department: str
    since: date
    until: date
    generated: datetime
    title: str
    opening: str
    sections: list[Section]
    closing: str
    numbers: dict[str, Any]  # what the sentences were written from

    def markdown(self) -> str:
        lines = [f"# {self.title}", "", f"{self.department}：", "", self.opening, ""]
        for s in self.sections:
            lines += [f"## {s.title}", ""]
            lines += [f"{n}. {item}" for n, item in enumerate(s.items, 1)] or [s.empty]
            lines.append("")
        lines += [self.closing, "", f"呼应 · 12345 热线平台（{self.generated:%Y年%m月%d日}自动生成）", ""]
        return "\n".join(lines)

    def html(self) -> str:
        e = html.escape
        body = [f"<h1>{e(self.title)}</h1>", f"<p>{e(self.department)}：</p>",
                f"<p>{e(self.opening)}</p>"]
        for s in self.sections:
            body.append(f"<h2>{e(s.title)}</h2>")
            body.append("<ol>" + "".join(f"<li>{e(i)}</li>" for i in s.items) + "</ol>"
                        if s.items else f"<p>{e(s.empty)}</p>")
        body += [f"<p>{e(self.closing)}</p>",
                 f"<p class=\"sign\">呼应 · 12345 热线平台（{self.generated:%Y年%m月%d日}自动生成）</p>"]
        return ("<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">"
                f"<title>{e(self.title)}</title><style>body{{font-family:sans-serif;"
                "max-width:46em;margin:2em auto;line-height:1.7}}h1{{font-size:1.4em;"
                "text-align:center}}h2{{font-size:1.1em}}.sign{{text-align:right}}</style>"
                "</head><body>" + "".join(body) + "</body></html>")


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EXCERPT else text[:EXCERPT] + "…"


def build_letter(session: Session, department: str, since: date, until: date, zone: ZoneInfo,
                 districts: tuple[str, ...], *, now: datetime | None = None) -> Letter:
    """NotFound if no complaint of the period went to `department`."""
    now = now or datetime.now(UTC)
    end = stats.period_bounds(since, until, zone)[1]
    rows = [r for r in stats.case_rows(session, since, until, zone, districts)
            if r.department == department]
    if not rows:
        raise NotFound(f"no complaint reported from {since} to {until} went to {department!r}")
    result = stats.statistics(rows, since, until, zone, as_of=min(end, now))
    [numbers] = result.departments
    texts = {c.id: c.text for c in _complaints(session, [r.complaint_id for r in rows])}
    opening = (f"根据呼应平台统计，{since:%Y年%m月%d日}至{until:%Y年%m月%d日}，贵单位共承办投诉"
               f"{numbers['complaints']}件，已办结{numbers['closed']}件（办结率"
               f"{_pct(numbers['closed_share'])}）")
    if numbers["close_hours_median"] is not None:
        opening += (f"，办结时长中位数{numbers['close_hours_median']}小时（90%在"
                    f"{numbers['close_hours_p90']}小时内）")
    opening += (f"；其中有办理时限的{numbers['with_time_limit']}件，超期"
                f"{numbers['overdue']}件（{_pct(numbers['overdue_share'])}）；重复投诉"
                f"{numbers['repeats']}件。现将需要关注的情况函告如下。")
    warnings = service.list_warnings(session, since, until, department=department)
    rising = Section("一、投诉量异常上升的问题")
    for w in [w for w in warnings if w.kind == "surge"][:MAX_ITEMS]:
        ev = w.evidence
        what = (f"{ev.get('district')}“{str(ev.get('subcategory')).replace('/', '›')}”类"
                if ev.get("family")
                == "subcategory" else "贵单位承办的")
        example = next((texts.get(i) or _text(session, i) for i in ev.get("complaint_ids", [])),
                       None)
        rising.items.append(
            f"{w.day:%m月%d日}，{what}投诉{w.observed:g}件，按其前28天的历史预计约"
            f"{w.expected:.2f}件（偶然出现的概率{w.p_value:.1e}）"
            + (f"。例：“{_excerpt(example)}”" if example else "。"))
    repeated = Section("二、群众反复反映的同一事件")
    issues = hot_issues.ranked(session, since, until, zone, district=None, top=200).issues
    for issue in [i for i in issues if i.department == department and i.reports >= 2][:MAX_ITEMS]:
        repeated.items.append(
            f"问题{issue.id}：{issue.reports}次反映（{issue.first_reported.astimezone(zone):%m月%d日}"
            f"至{issue.last_reported.astimezone(zone):%m月%d日}）"
            + (f"，地点：{issue.place}" if issue.place else "")
            + f"。“{_excerpt(issue.description)}”（工单{'、'.join(issue.complaint_ids[:5])}）")
    late = Section("三、超过办理时限的工单")
    overdue = [r for r in rows if r.overdue(result.as_of)]
    for r in sorted(overdue, key=lambda r: r.due_at or r.reported_at)[:MAX_ITEMS]:
        due = r.due_at or r.reported_at  # an overdue case always has a due time
        answer = (f"{r.responded_at.astimezone(zone):%m月%d日%H:%M}才答复" if r.responded_at
                  else "至今未答复")
        late.items.append(f"工单{r.complaint_id}（{r.reported_at.astimezone(zone):%m月%d日%H:%M}"
                          f"受理，应于{due.astimezone(zone):%m月%d日%H:%M}前答复，{answer}）："
                          f"“{_excerpt(texts.get(r.complaint_id, ''))}”")
    if len(overdue) > MAX_ITEMS:
        late.items.append(f"另有{len(overdue) - MAX_ITEMS}件超期工单，见统计导出（cases.csv）。")
    return Letter(
        department=department, since=since, until=until, generated=now,
        title=f"关于{department}投诉办理情况的提醒函（{since:%Y.%m.%d}—{until:%Y.%m.%d}）",
        opening=opening, sections=[rising, repeated, late],
        closing="请贵单位对上述问题予以关注，及时核查处置，并将办理情况反馈12345热线。",
        numbers=numbers | {"surges": len([w for w in warnings if w.kind == "surge"]),
                           "repeated_events": len(repeated.items),
                           "overdue_listed": min(len(overdue), MAX_ITEMS)})


def _complaints(session: Session, ids: list[str]) -> list[Any]:
    return [service.get_complaint(session, i) for i in ids]


def _text(session: Session, complaint_id: str) -> str | None:
    try:
        return str(service.get_complaint(session, complaint_id).text)
    except NotFound:
        return None
