"""Where complaints go: a routing per complaint, its duplicates and the replies it may be
offered, the response of POST /v1/route."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from model.router import Routing
from serving.schemas.errors import ErrorDetail


class LabelScore(BaseModel):
    label: str
    confidence: float


class HeadPublic(BaseModel):
    """One head's answer: the chosen label, its calibrated confidence, and the top 3."""

    label: str
    confidence: float
    top: list[LabelScore]


class DutyPublic(BaseModel):
    """The duty-list entry of the chosen subcategory: who handles it, how fast, on what basis."""

    category: str
    subcategory: str
    department: str | None = None
    time_limit: str | None = Field(None, description="e.g. 30min, 24h, 3d, 5wd (working days)")
    legal_basis: str | None = None


class RoutingPublic(BaseModel):
    """Where one complaint goes. `subcategory.label` is `category/subcategory`."""

    category: HeadPublic | None = None
    subcategory: HeadPublic | None = None
    department: HeadPublic | None = None
    duty: DutyPublic | None = None
    decision: Literal["auto", "review"] = Field(
        description="auto: confident enough to dispatch; review: a person should check it first")
    model_version: str

    @classmethod
    def of(cls, r: Routing) -> RoutingPublic:
        """The public shape of `Routing.to_dict()`, the one serialiser of a routing (the store
        logs the same dict)."""
        return cls.model_validate(r.to_dict())


class DuplicatePublic(BaseModel):
    """A registered complaint this one likely repeats (from the similarity index).

    `exact`: the same text once normalised, punctuation aside (similarity 1.0). `same_event`: exact, or the
    similarity reaches the calibrated threshold; otherwise it is only similar (above the floor).
    """

    id: str
    similarity: float = Field(description="the bundle's probability that the two report the same "
                                          "event (its pair model: places, numbers, time apart "
                                          "and the two cosines); for a bundle without one the "
                                          "mean of the embedding and char n-gram TF-IDF "
                                          "cosines; 1.0 for an exact repeat", examples=[0.97])
    same_event: bool = Field(description="likely the same event: merge rather than dispatch")
    exact: bool = Field(description="the same normalised text (found by hash)")


class ReplyQualityPublic(BaseModel):
    """How good a reply is as an answer, by the Teddy Cup criteria (model/reply_quality.py):
    deterministic text measures, not a model's judgement."""

    relevance: float = Field(description="0–1: cosine of the content character bigrams of this "
                                         "complaint and the reply; matching message/reply pairs "
                                         "score a median 0.23, unrelated ones 0.02",
                             examples=[0.21])
    completeness: float = Field(description="0–1: the share of greeting, answer or handling, "
                                            "closing or contact, and a substantive length "
                                            "(100 characters) that the reply has")
    interpretability: float = Field(description="0–1: the share of a cited rule (《…》 law or "
                                                "policy, 第…条), a basis phrase (根据…规定) and "
                                                "a reason (因为, 由于 …) that the reply gives")
    timeliness_days: float | None = Field(description="days from the answered complaint's "
                                                      "report to this reply")
    greeting: bool
    handling: bool = Field(description="states findings, actions or the rule that answers it "
                                       "(not only 'received' or 'forwarded')")
    closing: bool = Field(description="thanks, an offer of further help or a contact")
    length: int = Field(description="characters")
    citations: list[str] = Field(description="the rules cited: 《…》 documents and articles")
    basis: bool = Field(description="names the basis it acts on: 根据/依据/按照 … 规定/文件")
    reason: bool = Field(description="gives a reason: 因为, 由于, 因此 …")


class ReplyPublic(BaseModel):
    """An official reply this complaint may be answered with at once (秒回): the reply posted
    (a `replied` case event) to a registered complaint reporting the same event.

    `via` says how it was found: `same_event`, the reply of a registered complaint this one
    repeats (a `same_event` duplicate); `hot_issue`, the reply of another complaint of that
    duplicate's hot issue. An officer still decides whether it answers this complaint.
    """

    reply: str = Field(description="the reply's text, as posted")
    source_complaint_id: str = Field(description="the registered complaint it answered")
    replied_at: datetime
    department: str | None = Field(None, description="who replied, as the case-handling "
                                                     "system posted it")
    similarity: float | None = Field(description="the similarity of this complaint to the "
                                                 "duplicate it was found through (that "
                                                 "duplicate's `similarity`; for `hot_issue`, not "
                                                 "to the source complaint itself); none on a "
                                                 "review item, whose own hot issue it came from",
                                     examples=[0.97])
    via: Literal["same_event", "hot_issue"]
    quality: ReplyQualityPublic


class RouteResult(BaseModel):
    """The answer for complaints[index]: `routing` when it was routed, else `error`."""

    index: int
    id: str | None = None
    routing: RoutingPublic | None = None
    duplicates: list[DuplicatePublic] = Field(default_factory=list)
    replies: list[ReplyPublic] = Field(
        default_factory=list,
        description="replies it may be answered with (at most 3, best first): those of its "
                    "same-event duplicates, then of their hot issues; empty when none")
    error: ErrorDetail | None = None


class RouteResponse(BaseModel):
    """One result per complaint, in request order."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "request_id": "9b1f0c2e4d5a4c3b8e7f6a5b4c3d2e1f",
        "model_version": "haikou12345-v1",
        "routed": 1,
        "errors": 1,
        "results": [
            {"index": 0, "id": "20180408199687", "duplicates": [], "replies": [], "error": None,
             "routing": {
                "category": {"label": "交通管理", "confidence": 0.91, "top": [
                    {"label": "交通管理", "confidence": 0.91},
                    {"label": "街面秩序", "confidence": 0.05},
                    {"label": "市容环境", "confidence": 0.01}]},
                "subcategory": {"label": "交通管理/违章停车", "confidence": 0.84, "top": [
                    {"label": "交通管理/违章停车", "confidence": 0.84},
                    {"label": "交通管理/交通秩序", "confidence": 0.07},
                    {"label": "街面秩序/占道经营", "confidence": 0.02}]},
                "department": {"label": "公安局交通警察支队", "confidence": 0.88, "top": [
                    {"label": "公安局交通警察支队", "confidence": 0.88},
                    {"label": "秀英区政府", "confidence": 0.06},
                    {"label": "综合行政执法局", "confidence": 0.02}]},
                "duty": {"category": "交通管理", "subcategory": "违章停车",
                         "department": "公安局交通警察支队", "time_limit": "3wd",
                         "legal_basis": "《中华人民共和国道路交通安全法》第五十六条"},
                "decision": "auto", "model_version": "haikou12345-v1"}},
            {"index": 1, "id": "2", "routing": None, "duplicates": [], "replies": [], "error": {
                "code": "empty_text", "field": "complaints[1].text",
                "message": "complaints[1].text: text is empty or only whitespace; send the "
                           "complaint's words"}},
        ]}]})

    request_id: str
    model_version: str
    routed: int = Field(description="results with a routing")
    errors: int = Field(description="results with an error (bad item or routing failure)")
    results: list[RouteResult]

