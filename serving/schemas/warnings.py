"""Early warnings (GET /v1/warnings, POST /v1/warnings/detect, …/acknowledge)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from serving.schemas.review import MAX_NOTE_CHARS
from serving.schemas.validators import clean_text


class WarningPublic(BaseModel):
    id: int
    kind: str = Field(description="surge, repeated_event, overdue_cases or overdue_share")
    key: str = Field(description="what it is about: `subcategory=<key>@<district>`, "
                                 "`department=<name>` or `issue=<id>`")
    day: date
    department: str | None = Field(description="the department that should act")
    observed: float = Field(description="surge: complaints that day; repeated_event: reports in "
                                        "7 days; overdue_cases: cases past their limit; "
                                        "overdue_share: this week's share")
    expected: float | None = Field(description="surge: the expected count; overdue_share: the "
                                               "share in the 4 weeks before")
    p_value: float | None = Field(description="surge: the tail probability of the observed count")
    evidence: dict[str, Any] = Field(description="the series, counts and complaint ids the "
                                                 "numbers come from")
    created_at: datetime
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    note: str | None


class WarningsResponse(BaseModel):
    warnings: list[WarningPublic]


class DetectIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"day": "2018-04-16"}]})

    day: date = Field(description="the local day to check (its complaints and the 35 days "
                                  "before)")


class DetectResponse(BaseModel):
    day: date
    added: list[WarningPublic] = Field(description="new warnings; ones found before are not "
                                                   "added again")


class AcknowledgeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: Annotated[str | None, Field(strict=True, max_length=MAX_NOTE_CHARS)] = None

    @field_validator("note")
    @classmethod
    def _clean(cls, value: str | None) -> str | None:
        return clean_text(value, "note")
