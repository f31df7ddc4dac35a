"""Statistics for decision makers (role officer): GET /v1/stats as JSON, each table as CSV."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from fastapi.responses import Response
from sqlalchemy.orm import Session

from serving import hot_issues, stats
from serving.deps import OfficerKey, SessionsDep, SettingsDep
from serving.routes import errors
from serving.schemas import StatsResponse
from serving.storage import run

router = APIRouter(prefix="/v1/stats", tags=["statistics"])

Since = Annotated[date | None, Query(alias="from", description="first day (default: 29 days "
                                                              "before `to`)")]
Until = Annotated[date | None, Query(alias="to", description="last day (default: today)")]
By = Annotated[Literal["day", "week", "month"], Query(description="volumes per day, week "
                                                                  "(from Monday) or month")]


def _compute(session: Session, since: date, until: date, zone: ZoneInfo,
             districts: tuple[str, ...], by: stats.Granularity) -> stats.Statistics:
    rows = stats.case_rows(session, since, until, zone, districts)
    end = stats.period_bounds(since, until, zone)[1]
    return stats.statistics(rows, since, until, zone, by=by, as_of=min(end, datetime.now(UTC)))


@router.get(
    "", summary="Volumes, share closed, time to close, overdue and repeats of a period",
    description="Needs an `officer` key. Complaints count in the local day (HUYING_TIME_ZONE) "
                "they were reported; districts are HUYING_DISTRICTS, named in the location or "
                "the text. The same numbers as `huying stats` on this period's cases "
                "(`/v1/stats/cases.csv`). 422 if `from` is after `to` or the period is longer "
                "than 366 days.",
    responses=errors(401, 403, 422, 503))
async def get_stats(key: OfficerKey, sessions: SessionsDep, settings: SettingsDep,
                    since: Since = None, until: Until = None, by: By = "day") -> StatsResponse:
    zone = ZoneInfo(settings.time_zone)
    since, until = hot_issues.period(since, until, zone)
    result = await run(sessions, _compute, since, until, zone, settings.districts, by)
    return StatsResponse.model_validate(dict(
        from_=since, to=until, by=by, time_zone=zone.key, as_of=result.as_of,
        summary=result.summary, departments=result.departments, volumes=result.volumes))


@router.get(
    "/{table}.csv", summary="One statistics table as CSV",
    description="Needs an `officer` key. `summary`, `volumes`, `departments`, or `cases` (one row "
                "per case: what every number is computed from; `huying stats cases.csv` "
                "recomputes the others from it). Same parameters as `/v1/stats`.",
    responses={200: {"content": {"text/csv": {}}}, **errors(401, 403, 422, 503)})
async def get_table(key: OfficerKey, sessions: SessionsDep, settings: SettingsDep,
                    table: Annotated[Literal["summary", "volumes", "departments", "cases"],
                                     PathParam()],
                    since: Since = None, until: Until = None, by: By = "day") -> Response:
    zone = ZoneInfo(settings.time_zone)
    since, until = hot_issues.period(since, until, zone)
    result = await run(sessions, _compute, since, until, zone, settings.districts, by)
    return Response(stats.to_csv(result.table(table)), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{table}-{since}-{until}.csv"'})
