"""Early warnings (role officer): detect a day's, list them, acknowledge one (serving/warnings.py)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from sqlalchemy.orm import Session

from model.errors import InvalidInput
from serving import hot_issues, warnings
from serving.body import read_json
from serving.deps import OfficerKey, SessionsDep, SettingsDep
from serving.review import officer_id
from serving.routes import errors, json_body
from serving.schemas import (
    MAX_LABEL_CHARS,
    AcknowledgeIn,
    DetectIn,
    DetectResponse,
    WarningPublic,
    WarningsResponse,
)
from serving.storage import run
from serving.store import service

router = APIRouter(prefix="/v1/warnings", tags=["early warnings"])
Kind = Literal["surge", "repeated_event", "overdue_cases", "overdue_share"]


def _detect(session: Session, day: date, zone: ZoneInfo, districts: tuple[str, ...],
            actor: str) -> DetectResponse:
    if day > datetime.now(zone).date():
        raise InvalidInput(f"day {day} is in the future: its complaints have not come in yet",
                           field="day")
    added = warnings.detect_day(session, day, zone, districts, actor=actor)
    return DetectResponse(day=day, added=[WarningPublic.model_validate(w, from_attributes=True)
                                          for w in added])


@router.post(
    "/detect", summary="Detect a day's early warnings and store the new ones",
    description="Needs an `officer` key (run it daily, e.g. from cron, for yesterday). Surges "
                "per (subcategory, district) and per department against each series' own last "
                "28 days (negative-binomial tail, weekday-adjusted; measured in "
                "benchmarks/early_warning_bench.py), events reported 3+ times in 7 days, "
                "departments' overdue cases and rising overdue shares. Idempotent: a warning "
                "found before is not added again. 422 for a day in the future.",
    openapi_extra=json_body("DetectIn", {"day": {"summary": "某日", "value": {"day": "2018-04-16"}}}),
    responses=errors(400, 401, 403, 413, 422, 503))
async def detect(request: Request, key: OfficerKey, settings: SettingsDep,
                 sessions: SessionsDep) -> DetectResponse:
    body = DetectIn.model_validate(await read_json(request, settings.max_body_bytes))
    return await run(sessions, _detect, body.day, ZoneInfo(settings.time_zone),
                     settings.districts, officer_id(key))


def _list(session: Session, since: date, until: date, kind: str | None, department: str | None,
          status: str) -> WarningsResponse:
    rows = service.list_warnings(session, since, until, kind=kind, department=department,
                                 status=status)
    return WarningsResponse(warnings=[WarningPublic.model_validate(w, from_attributes=True)
                                      for w in rows])


@router.get("", summary="Early warnings about the days of a period",
            description="Needs an `officer` key. Newest day first. 422 if `from` is after `to` "
                        "or the period is longer than 366 days.",
            responses=errors(401, 403, 422, 503))
async def list_warnings(
    key: OfficerKey, sessions: SessionsDep, settings: SettingsDep,
    since: Annotated[date | None, Query(alias="from")] = None,
    until: Annotated[date | None, Query(alias="to")] = None,
    kind: Kind | None = None,
    department: Annotated[str | None, Query(min_length=1, max_length=MAX_LABEL_CHARS,
                                            pattern=r"^[^\x00-\x1f\x7f]+$")] = None,
    status: Literal["open", "acknowledged", "all"] = "all",
) -> WarningsResponse:
    since, until = hot_issues.period(since, until, ZoneInfo(settings.time_zone))
    return await run(sessions, _list, since, until, kind, department, status)


def _acknowledge(session: Session, warning_id: int, actor: str,
                 note: str | None) -> WarningPublic:
    row = service.acknowledge(session, warning_id, actor=actor, note=note)
    return WarningPublic.model_validate(row, from_attributes=True)


@router.post("/{warning_id}/acknowledge", summary="Acknowledge a warning (audited)",
             description="Needs an `officer` key. 404 if it does not exist, 409 if it was "
                         "acknowledged already.",
             openapi_extra=json_body("AcknowledgeIn", {"ack": {"summary": "已知悉", "value": {
                 "note": "已转交城管局核查"}}}),
             responses=errors(400, 401, 403, 404, 409, 413, 422, 503))
async def acknowledge(request: Request, key: OfficerKey, settings: SettingsDep,
                      sessions: SessionsDep,
                      warning_id: Annotated[int, PathParam(ge=1, le=2**31 - 1)]) -> WarningPublic:
    body = AcknowledgeIn.model_validate(await read_json(request, settings.max_body_bytes))
    return await run(sessions, _acknowledge, warning_id, officer_id(key), body.note)
