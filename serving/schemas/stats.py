"""Statistics (GET /v1/stats): volumes over time, and per department share closed, time to close,
overdue and repeats (serving/stats.py defines each number)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field


class DepartmentStatsPublic(BaseModel):
    department: str = Field(description="`全部` in the summary: every department together")
    complaints: int
    closed: int
    closed_share: float | None
    close_hours_median: float | None = Field(description="hours from report to closing, of the "
                                                         "closed ones")
    close_hours_p90: float | None
    with_time_limit: int = Field(description="complaints whose duty-list entry states a limit")
    overdue: int = Field(description="of those, replied after the due time or not by `as_of`")
    overdue_share: float | None
    repeats: int = Field(description="complaints that joined an issue an earlier one opened")
    reply_hours_median: float | None = Field(description="hours from report to the first reply")
    replies_scored: int = Field(description="complaints with a reply text, scored below")
    reply_relevance: float | None = Field(description="mean relevance of the latest reply to "
                                                      "the complaint (Teddy Cup criteria, 0–1)")
    reply_completeness: float | None = Field(description="mean completeness: greeting, "
                                                         "handling, closing, length (0–1)")
    reply_interpretability: float | None = Field(description="mean interpretability: cites a "
                                                             "rule, a basis, a reason (0–1)")


class VolumePublic(BaseModel):
    period: date = Field(description="the period's first day (a Monday for weeks)")
    dimension: str = Field(description="category, subcategory, district or department")
    value: str
    complaints: int


class StatsResponse(BaseModel):
    from_: date = Field(alias="from")
    to: date
    by: str
    time_zone: str
    as_of: datetime = Field(description="overdue is judged at this time: the period's end, or "
                                        "now if earlier")
    summary: DepartmentStatsPublic
    departments: list[DepartmentStatsPublic] = Field(description="most complaints first")
    volumes: list[VolumePublic]

    model_config = ConfigDict(populate_by_name=True)
