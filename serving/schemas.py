"""Request and response bodies of the HTTP API, named by role (…In, …Public, …Request…)."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from model.router import HeadPrediction, Routing
from model.taxonomy import LOCAL_TIME

# Real complaints from the Haikou 12345 hotline (data/haikou12345), used as OpenAPI examples.
EXAMPLE_TEXTS = (
    "市民来电反映: 秀英区向荣北路金美花园外面很多机动车违停，请交警局核实处理，谢谢！",
    "其原来在公司上班有社保，请问辞职出来了个人社保怎么交费？",
    "龙华区南沙路坡博新村二巷102号处有一盏路灯不亮",
)
MAX_ID_CHARS = 128
MAX_CHANNEL_CHARS = 64
MAX_LOCATION_CHARS = 255  # the store's location columns
# A received time outside this range is a caller's mistake (and 9999-12-31 overflows every
# due date computed from it); up to a day ahead allows for clocks that run fast.
EARLIEST_RECEIVED = datetime(1990, 1, 1, tzinfo=UTC)
LATEST_RECEIVED_AHEAD = timedelta(days=1)


def _valid_unicode(value: str, what: str) -> str:
    # JSON may carry lone surrogates (\ud800); they cannot be encoded, stored or echoed.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError("invalid_unicode", "{what} contains an unpaired surrogate "
                                  "(\\ud800-\\udfff); send valid Unicode text",
                                  {"what": what}) from None
    return value


class ComplaintIn(BaseModel):
    """One complaint as the intake system has it. Unknown fields are ignored.

    `text` must not be blank and may have at most HUYING_MAX_TEXT_CHARS characters (5000 by
    default); the limit is passed in the validation context by the routing service.
    """

    model_config = ConfigDict(extra="ignore")

    id: Annotated[Any, Field(description="Your id for the complaint (string or integer), echoed "
                                         "back; unique within a request.",
                             json_schema_extra={"type": ["string", "integer"],
                                                "examples": ["20180408199687"]})]
    text: Annotated[str, Field(strict=True,
                               description="What the citizen said or wrote (max 5000 characters "
                                           "by default).",
                               examples=[EXAMPLE_TEXTS[0]])]
    channel: Annotated[str | None, Field(strict=True, max_length=MAX_CHANNEL_CHARS,
                                         description="Where it came in.",
                                         examples=["12345热线", "微信小程序", "网格员App"])] = None
    received_at: Annotated[datetime | None, Field(description="When it came in (ISO 8601).",
                                                  examples=["2018-04-08T09:30:00+08:00"])] = None
    location: Annotated[str | None, Field(strict=True, max_length=MAX_LOCATION_CHARS,
                                          description="Address or place, as free text.",
                                          examples=["海口市秀英区向荣北路"])] = None

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise PydanticCustomError("wrong_type", "id must be a string or an integer")
        value = _valid_unicode(str(value), "id").strip()
        if not value or len(value) > MAX_ID_CHARS:
            raise PydanticCustomError("invalid_id", "id must have 1 to {limit} characters",
                                      {"limit": MAX_ID_CHARS})
        if any(unicodedata.category(ch) == "Cc" for ch in value):
            raise PydanticCustomError("invalid_id", "id contains a control character (such as "
                                      "NUL or a line break); send it as printable text")
        return value

    @field_validator("text")
    @classmethod
    def _text(cls, value: str, info: ValidationInfo) -> str:
        if all(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf") for ch in value):
            raise PydanticCustomError("empty_text", "text is empty or only whitespace or "
                                      "invisible characters; send the complaint's words")
        limit = (info.context or {}).get("max_text_chars")
        if limit is not None and len(value) > limit:
            raise PydanticCustomError(
                "text_too_long", "text has {length} characters; the limit is {limit} "
                "(HUYING_MAX_TEXT_CHARS): shorten it or send the essential part",
                {"length": len(value), "limit": limit})
        return _storable(_valid_unicode(value, "text"))

    @field_validator("channel", "location")
    @classmethod
    def _free_text(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else _storable(_valid_unicode(value, str(info.field_name)))

    @field_validator("received_at")
    @classmethod
    def _received(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.utcoffset() is None:
            value = value.replace(tzinfo=LOCAL_TIME)  # naive: the duty list's time
        latest = datetime.now(UTC) + LATEST_RECEIVED_AHEAD
        try:
            in_range = EARLIEST_RECEIVED <= value <= latest
        except OverflowError:  # 0001-01-01 with a positive offset is before year 1 in UTC
            in_range = False
        if not in_range:
            raise PydanticCustomError(
                "received_at_out_of_range", "received_at {value} is not between {earliest} and "
                "a day from now; send when the complaint came in, with its time zone",
                {"value": value.isoformat(), "earliest": EARLIEST_RECEIVED.date().isoformat()})
        return value


def _storable(value: str) -> str:
    # PostgreSQL text cannot hold NUL; the rest of what the caller sent is kept as it is.
    return value.replace("\x00", "\ufffd")


_COMPLAINTS_SCHEMA: dict[str, Any] = {
    "type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/ComplaintIn"},
    "description": "1 to HUYING_MAX_COMPLAINTS (100 by default) complaints. Each is validated on "
                   "its own: a malformed item gets an error in its result, the others are routed."}


class RouteRequest(BaseModel):
    """The body of POST /v1/route. Items are validated one by one (see ComplaintIn)."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [{
        "complaints": [
            {"id": "20180408199687", "text": EXAMPLE_TEXTS[0], "channel": "12345热线",
             "received_at": "2018-04-08T09:30:00+08:00", "location": "海口市秀英区向荣北路"},
            {"id": 2, "text": EXAMPLE_TEXTS[1]},
        ]}]})

    complaints: Annotated[list[Any], Field(strict=True, json_schema_extra=_COMPLAINTS_SCHEMA)]


class LabelScore(BaseModel):
    label: str
    confidence: float


class HeadPublic(BaseModel):
    """One head's answer: the chosen label, its calibrated confidence, and the top 3."""

    label: str
    confidence: float
    top: list[LabelScore]

    @classmethod
    def of(cls, p: HeadPrediction) -> HeadPublic:
        return cls(label=p.label, confidence=round(p.confidence, 4),
                   top=[LabelScore(label=lab, confidence=round(c, 4)) for lab, c in p.top])


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
        heads = {h: HeadPublic.of(p) for h, p in r.heads.items()
                 if h in ("category", "subcategory", "department")}
        duty = None if r.duty is None else DutyPublic(
            category=r.duty.category, subcategory=r.duty.subcategory,
            department=r.duty.department or None, time_limit=r.duty.time_limit or None,
            legal_basis=r.duty.legal_basis or None)
        return cls(**heads, duty=duty, decision=r.decision,  # type: ignore[arg-type]
                   model_version=r.model_version)


class DuplicatePublic(BaseModel):
    """A registered complaint this one likely repeats (from the similarity index).

    `exact`: the same text once normalised (similarity 1.0). `same_event`: exact, or the
    similarity reaches the calibrated threshold; otherwise it is only similar (above the floor).
    """

    id: str
    similarity: float = Field(description="the mean of the embedding cosine and the char n-gram "
                                          "TF-IDF cosine of the two texts (the embedding cosine "
                                          "for a bundle without lexical.json); 1.0 for an exact "
                                          "repeat", examples=[0.97])
    same_event: bool = Field(description="likely the same event: merge rather than dispatch")
    exact: bool = Field(description="the same normalised text (found by hash)")


class ErrorDetail(BaseModel):
    """What went wrong with one complaint (in a RouteResult) or a whole request (ErrorPublic)."""

    code: str = Field(examples=["text_too_long"])
    message: str = Field(examples=["complaints[0].text: text has 6012 characters; the limit is "
                                   "5000 (HUYING_MAX_TEXT_CHARS)"])
    field: str | None = Field(None, examples=["complaints[0].text"])


class RequestErrorDetail(ErrorDetail):
    request_id: str | None = Field(None, description="also in the X-Request-ID header")


class ErrorPublic(BaseModel):
    """Every 4xx/5xx body: {"error": {"code", "message", "field"?, "request_id"?}}."""

    error: RequestErrorDetail


class RouteResult(BaseModel):
    """The answer for complaints[index]: `routing` when it was routed, else `error`."""

    index: int
    id: str | None = None
    routing: RoutingPublic | None = None
    duplicates: list[DuplicatePublic] = Field(default_factory=list)
    error: ErrorDetail | None = None


class RouteResponse(BaseModel):
    """One result per complaint, in request order."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "request_id": "9b1f0c2e4d5a4c3b8e7f6a5b4c3d2e1f",
        "model_version": "haikou12345-v1",
        "routed": 1,
        "errors": 1,
        "results": [
            {"index": 0, "id": "20180408199687", "duplicates": [], "error": None, "routing": {
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
            {"index": 1, "id": "2", "routing": None, "duplicates": [], "error": {
                "code": "empty_text", "field": "complaints[1].text",
                "message": "complaints[1].text: text is empty or only whitespace; send the "
                           "complaint's words"}},
        ]}]})

    request_id: str
    model_version: str
    routed: int = Field(description="results with a routing")
    errors: int = Field(description="results with an error (bad item or routing failure)")
    results: list[RouteResult]


class RegisterResponse(RouteResponse):
    """POST /v1/complaints: per complaint its routing and the registered complaints it repeats
    (found before it was added); `registered` counts the complaints stored by this request."""

    registered: int = Field(description="complaints registered by this request (results with "
                                        "a routing)")


class SimilarResponse(BaseModel):
    """GET /v1/complaints/{id}/similar: registered complaints like this one, never itself."""

    id: str
    model_version: str
    window_days: float = Field(description="searched the complaints received up to this many "
                                           "days before or after this one")
    duplicates: list[DuplicatePublic]


class ComplaintRemovedPublic(BaseModel):
    """DELETE /v1/complaints/{id}: removed from the store (kept for history) and the index."""

    id: str
    removed: bool = True
    removed_at: datetime | None = None


class DutyEntryPublic(BaseModel):
    category: str
    subcategory: str
    department: str = ""
    time_limit: str = ""
    legal_basis: str = ""
    description: str = ""


class TaxonomyPublic(BaseModel):
    """The duty list the served model routes into."""

    model_version: str
    name: str = Field(examples=["haikou12345"])
    categories: list[str] = Field(examples=[["交通管理", "市容环境"]])
    departments: list[str] = Field(examples=[["公安局交通警察支队", "市政维修管理中心"]])
    entries: list[DutyEntryPublic]


class ModelPublic(BaseModel):
    """The served model: version, provenance, evaluation metrics and its model card."""

    version: str = Field(examples=["haikou12345-v1"])
    created: str | None = None
    dataset: str | None = Field(None, examples=["haikou12345"])
    data_hash: str | None = None
    base_encoder: str | None = None
    precision: str | None = Field(None, examples=["int8"])
    heads: list[str] = Field(examples=[["category", "subcategory", "department"]])
    labels: dict[str, int] = Field(description="label count per head")
    metrics: dict[str, Any]
    model_card: str


class SwapRequest(BaseModel):
    """Give exactly one: `version` (a directory in HUYING_BUNDLES_DIR, promoted through its
    retraining gate) or `path` (any bundle, served without touching bundles/ACTIVE)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"version": "haikou12345-v2"}, {"path": "/srv/huying/bundles/trial-7"},
                     {"version": "haikou12345-v3", "force": True,
                      "reason": "department gate failed on 30 rows; approved by the duty lead"}]})

    version: Annotated[str | None, Field(strict=True, max_length=128)] = None
    path: Annotated[str | None, Field(strict=True, max_length=4096)] = None
    force: Annotated[bool, Field(strict=True, description=(
        "promote a version whose retraining gate failed; the history records it"))] = False
    reason: Annotated[str | None, Field(strict=True, max_length=500,
                                        description="why, for the history")] = None

    @field_validator("version", "path", "reason")
    @classmethod
    def _unicode(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        value = _valid_unicode(value, str(info.field_name))
        if "\x00" in value:
            raise PydanticCustomError("invalid_field", "{name} contains a NUL character",
                                      {"name": str(info.field_name)})
        return value


class SwapResponse(BaseModel):
    version: str
    previous_version: str | None
    active_pointer_updated: bool = Field(description="bundles/ACTIVE now names this version")
    seconds: float


class BundleSummaryPublic(BaseModel):
    version: str
    created: str | None = None
    dataset: str | None = None
    precision: str | None = None
    accuracy: dict[str, float] = Field(default_factory=dict,
                                       description="test-split accuracy per head")
    auto_share: float | None = None
    active: bool = Field(description="named in bundles/ACTIVE")
    serving: bool = Field(description="the version this server routes with now")
    gate: str | None = Field(default=None, description=(
        "pass or fail: the verdict of `huying retrain` when it made this version"))
    error: str | None = None


class ModelListResponse(BaseModel):
    serving: str | None
    active: str | None
    bundles: list[BundleSummaryPublic]


class HealthPublic(BaseModel):
    status: Literal["alive", "ready"]
    model_version: str | None = None


# --- review queue and feedback (serving/routes/review.py, serving/routes/feedback.py) -----------

MAX_LABEL_CHARS = 255
MAX_NOTE_CHARS = 2000
MAX_PARTS = 20


def _clean_text(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    value = _valid_unicode(value, name)
    if "\x00" in value:
        raise PydanticCustomError("invalid_field", "{name} contains a NUL character",
                                  {"name": name})
    return value


LabelText = Annotated[str | None, Field(strict=True, max_length=MAX_LABEL_CHARS)]


class ReviewPartIn(BaseModel):
    """One complaint found in a text that is split: its own labels and, optionally, its words."""

    model_config = ConfigDict(extra="forbid")

    text: Annotated[str | None, Field(strict=True, max_length=100_000)] = None
    category: LabelText = None
    subcategory: LabelText = Field(None, description="the duty-list key `category/subcategory`, or "
                                                 "the bare name together with `category`")
    department: LabelText = None

    @field_validator("text", "category", "subcategory", "department")
    @classmethod
    def _clean(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _clean_text(value, str(info.field_name))


class ReviewAnswerIn(BaseModel):
    """An officer's answer to a review item (draft or submit).

    kind: `accept` the model's suggestion; `correct` any of category, subcategory, department
    (those left out keep the suggestion; a subcategory sets its category); `not_a_complaint`;
    `split` into two or more `parts`, each with its own labels. Submitted labels are checked
    against the served model's duty list; drafts are stored as they are.
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"kind": "accept"},
        {"kind": "correct", "subcategory": "街面秩序/机动车乱停放",
         "department": "公安局交通警察支队"},
        {"kind": "not_a_complaint", "note": "咨询，非投诉"},
        {"kind": "split", "parts": [{"category": "交通管理", "text": "路口违停"},
                                    {"subcategory": "市容环境/路灯不亮"}]}]})

    kind: Literal["accept", "correct", "not_a_complaint", "split"]
    category: LabelText = None
    subcategory: LabelText = Field(None, description="the duty-list key `category/subcategory`, or "
                                                 "the bare name together with `category`")
    department: LabelText = None
    parts: Annotated[list[ReviewPartIn] | None, Field(max_length=MAX_PARTS)] = None
    note: Annotated[str | None, Field(strict=True, max_length=MAX_NOTE_CHARS)] = None

    @field_validator("category", "subcategory", "department", "note")
    @classmethod
    def _clean(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _clean_text(value, str(info.field_name))


class FeedbackIn(ReviewAnswerIn):
    """The final routing of a complaint, posted by an intake system (POST /v1/feedback).

    `text` is needed only for a complaint this server never routed, queued or registered.
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"complaint_id": "20180408199687", "kind": "correct",
         "subcategory": "街面秩序/机动车乱停放"}]})

    complaint_id: Annotated[str, Field(strict=True, min_length=1, max_length=MAX_ID_CHARS)]
    text: Annotated[str | None, Field(strict=True, min_length=1, max_length=100_000)] = None

    @field_validator("complaint_id", "text")
    @classmethod
    def _clean_id(cls, value: str | None, info: ValidationInfo) -> str | None:
        value = _clean_text(value, str(info.field_name))
        if value is not None and not value.strip():
            raise PydanticCustomError("invalid_field", "{name} is blank",
                                      {"name": str(info.field_name)})
        return value


class ReviewItemSummaryPublic(BaseModel):
    """One review item as the queue lists it: the suggestion's labels, SLA, claim."""

    id: int
    complaint_id: str | None = None
    text: str
    channel: str | None = None
    reason: str = Field(description="low_confidence, audit, spot_check or manual")
    status: Literal["open", "claimed", "done"]
    received_at: datetime
    due_at: datetime = Field(description="review deadline: received + the duty list's time "
                                         "limit for the suggested subcategory")
    category: str | None = None
    subcategory: str | None = None
    department: str | None = None
    confidence: float = Field(description="the least confidence over the heads")
    model_version: str | None = None
    claimed_by: str | None = None
    claim_expires_at: datetime | None = None


class ReviewQueuePublic(BaseModel):
    total: int = Field(description="items matching the filters, over all pages")
    limit: int
    offset: int
    items: list[ReviewItemSummaryPublic]


class SuggestionPublic(BaseModel):
    """What the model said about the item: top suggestions and confidences per head."""

    category: HeadPublic | None = None
    subcategory: HeadPublic | None = None
    department: HeadPublic | None = None
    decision: str | None = None
    model_version: str | None = None


class SimilarCasePublic(BaseModel):
    """A registered complaint like this one (from the similarity index, when it is enabled)."""

    id: str
    similarity: float
    kind: Literal["exact", "near"] = "near"
    text: str | None = None


class ResponsePublic(BaseModel):
    """A person's answer: a draft, a submitted label, or a discarded draft."""

    id: int
    review_item_id: int | None = None
    complaint_id: str | None = None
    status: Literal["draft", "submitted", "discarded"]
    kind: str
    category: str | None = None
    subcategory: str | None = None
    department: str | None = None
    parts: list[dict[str, Any]] | None = None
    note: str | None = None
    officer: str | None = None
    source: str
    updated_at: datetime
    submitted_at: datetime | None = None
    model_version: str | None = Field(None, description="the model whose suggestion was seen")


class AuditEntryPublic(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str = Field(examples=["review_item.claimed", "response.submitted"])
    object_type: str
    object_id: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


class ReviewItemPublic(ReviewItemSummaryPublic):
    """One item with everything an officer needs to decide."""

    suggestion: SuggestionPublic
    duty: DutyEntryPublic | None = Field(None, description="the duty-list entry of the "
                                                           "suggested subcategory")
    similar: list[SimilarCasePublic] = Field(default_factory=list)
    draft: ResponsePublic | None = Field(None, description="your draft answer, if any")
    responses: list[ResponsePublic] = Field(default_factory=list)
    audit: list[AuditEntryPublic] = Field(default_factory=list,
                                          description="the item's and its answers' history")
