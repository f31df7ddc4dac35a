"""The promotion gate: a candidate and the current model judged on the frozen test split and on
recent corrections neither has trained on; `Gate` says how much worse is tolerated, overall and
per department (with McNemar's test where asked), and the comparison is written as
`comparison.json` + `report.md` (what model/versions.py reads before a promotion).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from model.errors import InvalidInput
from model.hierarchy import decode
from model.taxonomy import HEADS
from training.datasets import Record
from training.predictor import Predictor

SCOPES = ("test", "recent")


@dataclass(frozen=True)
class Gate:
    """How much worse a candidate may be than the current model and still be promoted."""

    tolerance: float = 0.005  # overall accuracy, per head
    department_tolerance: float = 0.03  # accuracy within one department, per head
    min_support: int = 50  # rows a department (or a scope) needs before it is gated
    # None: a drop beyond the tolerance fails. A level such as 0.05: it fails only if it is also
    # significant (one-sided exact McNemar test on the rows where the two models disagree), so
    # that noise in a 100-row department does not veto a candidate better everywhere else.
    significance: float | None = None

    def __post_init__(self) -> None:
        for name in ("tolerance", "department_tolerance"):
            if not 0 <= getattr(self, name) < 1:
                raise InvalidInput(f"{name}={getattr(self, name)}: use an accuracy difference in "
                                   "[0, 1), e.g. 0.005", name)
        if self.min_support < 1:
            raise InvalidInput(f"min_support={self.min_support}: use a row count ≥ 1, e.g. 50",
                               "min_support")
        if self.significance is not None and not 0 < self.significance < 1:
            raise InvalidInput(f"significance={self.significance}: use a level in (0, 1), e.g. "
                               "0.05, or None for the plain tolerance", "significance")


@dataclass(frozen=True)
class Check:
    """One gated accuracy: the candidate must not be below the current model by more than
    `tolerance`."""

    scope: str  # "test" (frozen split) or "recent" (held-out corrections)
    group: str  # "overall" or a department
    head: str
    rows: int
    candidate: float
    current: float
    tolerance: float
    p_value: float | None = None  # that the current model's extra wins are chance (McNemar)
    significance: float | None = None  # Gate.significance

    @property
    def delta(self) -> float:
        return self.candidate - self.current

    @property
    def passed(self) -> bool:
        if self.delta >= -self.tolerance - 1e-12:
            return True
        return (self.significance is not None and self.p_value is not None
                and self.p_value >= self.significance)

    def describe(self) -> str:
        where = "overall" if self.group == "overall" else f"department {self.group}"
        test = ("" if self.significance is None or self.p_value is None
                else f"; p = {self.p_value:.3f}, significant below {self.significance:g}")
        return (f"{self.scope}, {where}, {self.head}: candidate {self.candidate:.3f} vs current "
                f"{self.current:.3f} on {self.rows} rows ({self.delta:+.3f}; at most "
                f"-{self.tolerance:g} allowed{test})")


@dataclass(frozen=True)
class Comparison:
    """Candidate vs current, per scope and department; `passed` is the gate's verdict."""

    candidate: str
    current: str | None
    gate: Gate
    scores: dict[str, Any]  # scope -> {"rows", "overall": {head: {...}}, "departments": {...}}
    checks: tuple[Check, ...]
    problems: tuple[str, ...] = ()  # failures that are not accuracy checks (a head missing)
    notes: tuple[str, ...] = ()
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def passed(self) -> bool:
        return not self.problems and all(c.passed for c in self.checks)

    @property
    def reasons(self) -> list[str]:
        """Why the gate failed (empty when it passed)."""
        return list(self.problems) + [c.describe() for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {"candidate": self.candidate, "current": self.current, "passed": self.passed,
                "reasons": self.reasons, "gate": asdict(self.gate), "scores": self.scores,
                "checks": [{**asdict(c), "delta": round(c.delta, 6), "passed": c.passed}
                           for c in self.checks],
                "problems": list(self.problems), "notes": list(self.notes),
                "created": self.created}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Comparison:
        fields = {"scope", "group", "head", "rows", "candidate", "current", "tolerance",
                  "p_value", "significance"}
        return cls(candidate=data["candidate"], current=data.get("current"),
                   gate=Gate(**data["gate"]), scores=data["scores"],
                   checks=tuple(Check(**{k: v for k, v in c.items() if k in fields})
                                for c in data["checks"]),
                   problems=tuple(data.get("problems", ())), notes=tuple(data.get("notes", ())),
                   created=data.get("created", ""))


def compare(candidate: Predictor, current: Predictor | None,
            frozen_test_records: Sequence[Record],
            recent_corrections: Sequence[Record] = (), *,
            tolerance: float = 0.005, department_tolerance: float = 0.03,
            min_support: int = 50, significance: float | None = None) -> Comparison:
    """Judge `candidate` against `current` on the frozen test split and on recent corrections
    (as Records: training/retrain.py `correction_records`).

    Accuracy is top-1 of the hierarchy-consistent answer, per head, overall and within each gold
    department. Gated: overall accuracy per head (scopes with ≥ `min_support` rows) must not drop
    by more than `tolerance`; accuracy per head within each department with ≥ `min_support` rows
    must not drop by more than `department_tolerance` (with `significance`, a larger drop fails
    only when it is significant at that level). With no current model, the gate passes.
    """
    gate = Gate(tolerance, department_tolerance, min_support, significance)
    scopes = {"test": list(frozen_test_records), "recent": list(recent_corrections)}
    if current is None:
        scores = {s: _scores(candidate, None, rows, gate) for s, rows in scopes.items() if rows}
        return Comparison(candidate.name, None, gate, scores, (),
                          notes=("no current model: nothing to compare against, the gate "
                                 "passes",))
    problems, notes, checks = [], [], []
    missing = [h for h in current.spaces if h not in candidate.spaces]
    if missing:
        problems.append(f"the candidate does not predict {', '.join(missing)}; the current model "
                        "does")
    scores = {}
    for scope, rows in scopes.items():
        if not rows:
            notes.append(f"{scope}: no rows, not compared")
            continue
        scores[scope] = s = _scores(candidate, current, rows, gate)
        for head, m in s["overall"].items():
            if m["rows"] >= gate.min_support:
                checks.append(_gated(scope, "overall", head, m, gate.tolerance, gate))
            else:
                notes.append(f"{scope}, overall, {head}: only {m['rows']} rows (< min_support "
                             f"{gate.min_support}), reported but not gated")
        for dept, heads in s["departments"].items():
            for head, m in heads.items():
                checks.append(_gated(scope, dept, head, m, gate.department_tolerance, gate))
    return Comparison(candidate.name, current.name, gate, scores, tuple(checks),
                      tuple(problems), tuple(notes))


def _gated(scope: str, group: str, head: str, m: Mapping[str, Any], tolerance: float,
           gate: Gate) -> Check:
    return Check(scope, group, head, m["rows"], m["candidate"], m["current"], tolerance,
                 p_value=mcnemar_p(m["current_only"], m["candidate_only"]),
                 significance=gate.significance)


def mcnemar_p(current_only: int, candidate_only: int) -> float:
    """One-sided exact McNemar test: the chance of the current model winning at least
    `current_only` of the rows where exactly one model is right, if both were equally good."""
    from scipy.stats import binom

    n = current_only + candidate_only
    return 1.0 if n == 0 else round(float(binom.sf(current_only - 1, n, 0.5)), 6)


def _answers(predictor: Predictor, records: Sequence[Record]) -> dict[str, list[str]]:
    probs = predictor.predict_proba([r.text for r in records])
    decoded = decode(probs, predictor.spaces, k=1)
    return {h: [row[h].label for row in decoded] for h in predictor.spaces}


def _scores(candidate: Predictor, current: Predictor | None, records: Sequence[Record],
            gate: Gate) -> dict[str, Any]:
    answers = {"candidate": _answers(candidate, records)}
    if current is not None:
        answers["current"] = _answers(current, records)
    heads = [h for h in HEADS if all(h in a for a in answers.values())
             and any(h in r.labels for r in records)]

    def accuracy(rows: Sequence[int], head: str) -> dict[str, Any]:
        labelled = [i for i in rows if head in records[i].labels]
        out: dict[str, Any] = {"rows": len(labelled)}
        right = {role: np.array([a[head][i] == records[i].labels[head] for i in labelled],
                                dtype=bool) for role, a in answers.items()}
        for role, r in right.items():
            out[role] = round(float(r.mean()), 6) if labelled else None
        if "current" in right:
            out["candidate_only"] = int((right["candidate"] & ~right["current"]).sum())
            out["current_only"] = int((right["current"] & ~right["candidate"]).sum())
        return out

    everything = range(len(records))
    by_dept: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        if "department" in r.labels:
            by_dept.setdefault(r.labels["department"], []).append(i)
    departments = {}
    for dept, rows in sorted(by_dept.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        if len(rows) >= gate.min_support:
            departments[dept] = {h: m for h in heads if (m := accuracy(rows, h))["rows"]}
    return {"rows": len(records), "overall": {h: accuracy(everything, h) for h in heads},
            "departments": departments,
            "departments_below_min_support": sum(1 for rows in by_dept.values()
                                                 if len(rows) < gate.min_support)}


def write_comparison(comparison: Comparison, path: str | Path) -> Path:
    """Write `path/comparison.json` and `path/report.md`; returns `path`."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / "comparison.json").write_text(
        json.dumps(comparison.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")
    (path / "report.md").write_text(render_comparison(comparison), encoding="utf-8")
    return path


def render_comparison(c: Comparison) -> str:
    g = c.gate
    lines = [f"# Candidate {c.candidate} vs current {c.current or '(none)'}", "",
             f"**Gate: {'PASS' if c.passed else 'FAIL'}.** Created {c.created}. Overall accuracy "
             f"per head may drop by at most {g.tolerance:g}; accuracy per head within a department "
             f"with at least {g.min_support} rows by at most {g.department_tolerance:g}"
             + ("" if g.significance is None else
                f" (a larger drop fails only if significant at {g.significance:g}, one-sided "
                "exact McNemar test)")
             + ". Accuracy is top-1 of the hierarchy-consistent answer.", ""]
    if c.reasons:
        lines += ["## Why it failed", ""] + [f"- {r}" for r in c.reasons] + [""]
    for scope, s in c.scores.items():
        title = ("frozen test split" if scope == "test"
                 else "recent corrections (held out of training)")
        lines += [f"## {scope}: {title}, {s['rows']} rows", "",
                  "| group | head | rows | candidate | current | Δ | p (McNemar) |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
        groups = [("overall", s["overall"])] + list(s["departments"].items())
        for group, heads in groups:
            for head, m in heads.items():
                cur = m.get("current")
                delta = "—" if cur is None else f"{m['candidate'] - cur:+.3f}"
                p = ("—" if cur is None else
                     f"{mcnemar_p(m['current_only'], m['candidate_only']):.3f}")
                lines.append(f"| {group} | {head} | {m['rows']} | {_f(m['candidate'])} | "
                             f"{_f(cur)} | {delta} | {p} |")
        lines += ["", f"{s['departments_below_min_support']} departments have fewer than "
                      f"{g.min_support} rows here and are not gated one by one.", ""]
    if c.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in c.notes] + [""]
    return "\n".join(lines)


def _f(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f}"
