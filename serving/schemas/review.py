"""The review queue and feedback: officers' answers, queue pages, review items."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from serving.schemas.intake import MAX_ID_CHARS
from serving.schemas.models import DutyEntryPublic
from serving.schemas.routing import HeadPublic, ReplyPublic
from serving.schemas.validators import clean_text

MAX_LABEL_CHARS = 255
MAX_NOTE_CHARS = 2000
MAX_PARTS = 20

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
        return clean_text(value, str(info.field_name))


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
        return clean_text(value, str(info.field_name))


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
        value = clean_text(value, str(info.field_name))
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
    registered: bool = Field(False, description="its complaint is registered: it has a case, "
                                                "to which a reply can be posted")
    replies: list[ReplyPublic] = Field(default_factory=list, description=(
        "replies already given to its hot issue (秒回), to reuse or edit"))
    draft: ResponsePublic | None = Field(None, description="your draft answer, if any")
    responses: list[ResponsePublic] = Field(default_factory=list)
    audit: list[AuditEntryPublic] = Field(default_factory=list,
                                          description="the item's and its answers' history")
