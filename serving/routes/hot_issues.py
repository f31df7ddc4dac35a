"""Hot issues (热点问题, role officer): the ranked list of a period, one issue, merge and split
(serving/hot_issues.py; every change audited)."""

from __future__ import annotations

from datetime import date
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam

from serving import hot_issues
from serving.body import read_json
from serving.deps import OfficerKey, SessionsDep, SettingsDep
from serving.review import officer_id
from serving.routes import errors, json_body
from serving.schemas import (
    MAX_LABEL_CHARS,
    HotIssueDetailPublic,
    HotIssuesResponse,
    MergeIssuesIn,
    SplitIssueIn,
)
from serving.storage import run

router = APIRouter(prefix="/v1/hot-issues", tags=["hot issues"])

IssueId = Annotated[int, PathParam(ge=1, le=2**31 - 1, description="the hot issue's id")]


@router.get(
    "", summary="The hot issues of a period, hottest first",
    description="Needs an `officer` key. Registered complaints join the issue of the complaint "
                "they repeat (the same event, as `duplicates[].same_event` says) or open one; "
                "an issue is listed when one of its complaints was reported (received, else "
                "registered) between `from` and `to`, both days included, in the hotline's time "
                "zone (HUYING_TIME_ZONE). `district` keeps complaints whose location names it "
                "(or, without a location, whose text does). 422 if `from` is after `to` or the "
                "period is longer than 366 days.",
    responses=errors(401, 403, 422, 503))
async def list_hot_issues(
    key: OfficerKey, sessions: SessionsDep, settings: SettingsDep,
    since: Annotated[date | None, Query(alias="from", description="first day (default: 29 days "
                                                                  "before `to`)")] = None,
    until: Annotated[date | None, Query(alias="to", description="last day (default: today)")] = None,
    district: Annotated[str | None, Query(max_length=MAX_LABEL_CHARS,
                                          pattern=r"^[^\x00-\x1f\x7f]*$",
                                          examples=["龙华区"])] = None,
    top: Annotated[int, Query(ge=1, le=200, description="at most this many issues")] = 20,
) -> HotIssuesResponse:
    zone = ZoneInfo(settings.time_zone)
    since, until = hot_issues.period(since, until, zone)
    return await run(sessions, hot_issues.ranked, since, until, zone,
                     district=hot_issues.check_district(district), top=top)


@router.get("/{issue_id}", summary="One hot issue and its complaints",
            description="Needs an `officer` key. A merged issue names the issue its complaints "
                        "moved to (`merged_into`) and lists none.",
            responses=errors(401, 403, 404, 422, 503))
async def hot_issue(issue_id: IssueId, key: OfficerKey,
                    sessions: SessionsDep) -> HotIssueDetailPublic:
    return await run(sessions, hot_issues.detail, issue_id)


@router.post("/{issue_id}/merge", summary="Merge this issue into another (the same event)",
             description="Needs an `officer` key. Every complaint moves to `into`; this issue "
                         "stays, empty, with `merged_into`. Audited. 404 if either issue does "
                         "not exist, 409 if either was merged already, 422 to merge an issue "
                         "into itself.",
             openapi_extra=json_body("MergeIssuesIn", {"merge": {"summary": "合并",
                                                                 "value": {"into": 1}}}),
             responses=errors(400, 401, 403, 404, 409, 413, 422, 503))
async def merge(issue_id: IssueId, request: Request, key: OfficerKey, settings: SettingsDep,
                sessions: SessionsDep) -> HotIssueDetailPublic:
    body = MergeIssuesIn.model_validate(await read_json(request, settings.max_body_bytes))
    return await run(sessions, hot_issues.merge, issue_id, body.into, officer_id(key))


@router.post("/{issue_id}/split", summary="Split complaints off into a new issue",
             description="Needs an `officer` key. The listed complaints (of this issue; at least "
                         "one must stay) move to a new issue, which is returned. Audited. 404 "
                         "if the issue does not exist, 409 if it was merged, 422 for complaints "
                         "that are not its own.",
             openapi_extra=json_body("SplitIssueIn", {"split": {
                 "summary": "拆分", "value": {"complaint_ids": ["20180408199701"]}}}),
             responses=errors(400, 401, 403, 404, 409, 413, 422, 503))
async def split(issue_id: IssueId, request: Request, key: OfficerKey, settings: SettingsDep,
                sessions: SessionsDep) -> HotIssueDetailPublic:
    body = SplitIssueIn.model_validate(await read_json(request, settings.max_body_bytes))
    return await run(sessions, hot_issues.split, issue_id, body.complaint_ids, officer_id(key))
