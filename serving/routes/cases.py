"""Cases: what follows routing — assigned, replied, closed, reopened — posted by the
case-handling system or an officer, and a complaint's case with its due time (serving/cases.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from serving import cases
from serving.body import read_json
from serving.deps import AnyKey, RouterDep, SessionsDep, SettingsDep
from serving.review import officer_id
from serving.routes import errors, json_body
from serving.routes.complaints import ComplaintId
from serving.schemas import CaseEventIn, CasePublic
from serving.storage import run

router = APIRouter(tags=["cases"])

_EXAMPLES = {
    "assigned": {"summary": "派单 (assigned to a department)",
                 "value": {"event_id": "cs-20180408-0001", "kind": "assigned",
                           "at": "2018-04-08T09:35:00+08:00", "department": "公安局交通警察支队"}},
    "replied": {"summary": "答复 (the department's reply)",
                "value": {"event_id": "cs-20180408-0002", "kind": "replied",
                          "at": "2018-04-08T10:02:00+08:00",
                          "reply": "经核实，已安排交警到现场处理违停车辆。"}},
    "closed": {"summary": "办结 (closed)",
               "value": {"event_id": "cs-20180408-0003", "kind": "closed",
                         "at": "2018-04-09T09:00:00+08:00"}},
}


@router.post(
    "/v1/complaints/{complaint_id}/events", summary="Record a step of a complaint's case",
    description="Any role: the case-handling system's `intake` key or an `officer`. Events come "
                "in the order they happened: routed → assigned → replied → closed (→ reopened "
                "→ …); a case may be reassigned, replied to again, or closed without a reply. "
                "The same `event_id` again returns the case unchanged (`replayed`); a different "
                "event under a used id is a 409, as is a step the case's state does not allow. "
                "422 for an event before the complaint was reported or before the case's last "
                "event, more than 5 minutes in the future, or a department not in the served "
                "duty list. 404 if the complaint is not registered. The event is committed "
                "before the answer is sent.",
    openapi_extra=json_body("CaseEventIn", _EXAMPLES),
    responses=errors(400, 401, 404, 409, 413, 422, 503))
async def post_event(complaint_id: ComplaintId, request: Request, key: AnyKey,
                     settings: SettingsDep, sessions: SessionsDep,
                     router_: RouterDep) -> CasePublic:
    body = CaseEventIn.model_validate(await read_json(request, settings.max_body_bytes))
    return await run(sessions, cases.post, complaint_id, body, router_.bundle.taxonomy,
                     actor=officer_id(key))


@router.get(
    "/v1/complaints/{complaint_id}/case", summary="A complaint's case: state, due time, events",
    description="Any role. `overdue` is computed at the time of the request. 404 if the "
                "complaint is not registered.",
    responses=errors(401, 404, 422, 503))
async def get_case(complaint_id: ComplaintId, key: AnyKey, sessions: SessionsDep) -> CasePublic:
    return await run(sessions, cases.case, complaint_id)
