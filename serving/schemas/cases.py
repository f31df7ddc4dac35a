"""Cases: the events that follow routing, and a complaint's case as they make it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from model.taxonomy import LOCAL_TIME
from serving.schemas.intake import EARLIEST_RECEIVED, MAX_ID_CHARS
from serving.schemas.review import MAX_LABEL_CHARS, MAX_NOTE_CHARS
from serving.schemas.validators import clean_text, storable, valid_unicode

MAX_REPLY_CHARS = 20_000


class CaseEventIn(BaseModel):
    """One step of a case, as the case-handling system (or an officer) records it.

    `assigned` needs the `department`; `replied` needs the `reply` (the official answer to the
    citizen, kept for instant replies); `closed` and `reopened` may carry a `note`. Events are
    posted in the order they happened; posting the same `event_id` again changes nothing.
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"event_id": "cs-20180408-0001", "kind": "assigned", "at": "2018-04-08T09:35:00+08:00",
         "department": "公安局交通警察支队"},
        {"event_id": "cs-20180408-0002", "kind": "replied", "at": "2018-04-08T10:02:00+08:00",
         "reply": "经核实，已安排交警到现场处理违停车辆。"},
        {"event_id": "cs-20180408-0003", "kind": "closed", "at": "2018-04-09T09:00:00+08:00"}]})

    event_id: Annotated[str, Field(strict=True, min_length=1, max_length=MAX_ID_CHARS,
                                   pattern=r"^[^\x00-\x1f\x7f]+$",
                                   description="the poster's own id for this event: a retry "
                                               "with the same id is not recorded twice")]
    kind: Literal["assigned", "replied", "closed", "reopened"]
    at: Annotated[datetime, Field(description="when it happened (ISO 8601; without a time zone "
                                              "the duty list's local time)")]
    department: Annotated[str | None, Field(strict=True, min_length=1,
                                            max_length=MAX_LABEL_CHARS)] = None
    reply: Annotated[str | None, Field(strict=True, min_length=1,
                                       max_length=MAX_REPLY_CHARS)] = None
    note: Annotated[str | None, Field(strict=True, max_length=MAX_NOTE_CHARS)] = None

    @field_validator("event_id", "department")
    @classmethod
    def _clean(cls, value: str | None, info: ValidationInfo) -> str | None:
        value = clean_text(value, str(info.field_name))
        if value is not None and not value.strip():
            raise PydanticCustomError("empty", "{name} is blank", {"name": info.field_name})
        return value.strip() if value else value

    @field_validator("reply", "note")
    @classmethod
    def _text(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        value = storable(valid_unicode(value, str(info.field_name)))
        if info.field_name == "reply" and not value.strip():
            raise PydanticCustomError("empty", "reply is blank; send the reply's words")
        return value

    @field_validator("at")
    @classmethod
    def _at(cls, value: datetime) -> datetime:
        if value.utcoffset() is None:
            value = value.replace(tzinfo=LOCAL_TIME)
        try:
            valid = value >= EARLIEST_RECEIVED
        except OverflowError:
            valid = False
        if not valid:
            raise PydanticCustomError("at_out_of_range", "at {value} is before {earliest}",
                                      {"value": value.isoformat(),
                                       "earliest": EARLIEST_RECEIVED.date().isoformat()})
        return value.astimezone(UTC)


class CaseEventPublic(BaseModel):
    event_id: str
    kind: str
    at: datetime
    department: str | None
    reply: str | None
    note: str | None
    actor: str = Field(description="who posted it (the key's name and id)")
    recorded_at: datetime


class CasePublic(BaseModel):
    complaint_id: str
    state: Literal["routed", "assigned", "replied", "closed", "reopened"]
    department: str | None = Field(description="last assigned to, else routed to")
    routed_department: str | None
    time_limit: str | None = Field(description="the duty-list limit of its routed subcategory "
                                               "(30min, 24h, 3d, 5wd), if the list states one")
    reported_at: datetime = Field(description="received, else registered")
    due_at: datetime | None = Field(description="reported_at plus the time limit; none without "
                                                "a limit")
    responded_at: datetime | None = Field(description="its first reply (or its closing, if it "
                                                      "was closed without one)")
    closed_at: datetime | None
    overdue: bool = Field(description="the response came after due_at, or has not come and "
                                      "due_at has passed (computed now)")
    events: list[CaseEventPublic]
    replayed: bool | None = Field(None, description="on POST: true if this event had been "
                                                    "recorded before (nothing changed)")
