"""Hot issues (热点问题): the ranked list of a period, one issue's complaints, merge and split."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from serving.schemas.intake import MAX_ID_CHARS
from serving.schemas.validators import clean_text

MAX_SPLIT = 1000


class HotIssuePublic(BaseModel):
    """One event that complaints of the period report, ranked by heat (model/hot_issues.py)."""

    rank: int
    id: int
    heat: float = Field(description="(ln(1+reports) + ln(1+reporters)) · 2^(−days since the last "
                                    "report / 30), at the end of the period; a complaint counts "
                                    "as one reporter")
    reports: int = Field(description="complaints of the period in this issue")
    first_reported: datetime
    last_reported: datetime
    place: str = Field(description="the place most of its complaints name (\"\" if none)")
    description: str = Field(description="its first complaint's first sentence")
    department: str | None = Field(description="the department most of its complaints were "
                                               "routed to")
    complaint_ids: list[str] = Field(description="in the order they were reported")
    trend: list[int] = Field(description="complaints per day, one number per day of the period "
                                         "(`days`)")


class HotIssuesResponse(BaseModel):
    from_: date = Field(alias="from", description="first day of the period (local time)")
    to: date = Field(description="last day of the period, included")
    time_zone: str
    district: str | None
    days: list[date] = Field(description="the days `trend` counts, from `from` to `to`")
    total: int = Field(description="issues with a complaint in the period (before `top`)")
    issues: list[HotIssuePublic]

    model_config = ConfigDict(populate_by_name=True)


class HotIssueComplaintPublic(BaseModel):
    id: str
    text: str
    reported_at: datetime = Field(description="received, else registered")
    channel: str | None
    location: str | None
    department: str | None = Field(description="the department it was routed to")


class HotIssueDetailPublic(BaseModel):
    id: int
    opened_at: datetime
    merged_into: int | None = Field(description="set when an officer merged this issue into "
                                                "another: its complaints are there now")
    complaints: list[HotIssueComplaintPublic]


class MergeIssuesIn(BaseModel):
    """Merge this issue into `into`: every complaint moves there."""

    model_config = ConfigDict(extra="forbid")

    into: Annotated[int, Field(strict=True, ge=1, le=2**31 - 1)]


class SplitIssueIn(BaseModel):
    """Move these complaints of the issue into a new issue (at least one must stay behind)."""

    model_config = ConfigDict(extra="forbid")

    complaint_ids: Annotated[list[Annotated[str, Field(strict=True, min_length=1,
                                                       max_length=MAX_ID_CHARS)]],
                             Field(min_length=1, max_length=MAX_SPLIT)]

    @field_validator("complaint_ids")
    @classmethod
    def _clean(cls, value: list[str]) -> list[str]:
        return [clean_text(v, "complaint_ids") or "" for v in value]
