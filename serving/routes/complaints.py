"""Registered complaints: register (and route), find similar ones, remove (serving/complaints.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from serving.body import read_json
from serving.deps import (
    AnyKey,
    ComplaintsDep,
    IntakeKey,
    RequestIdDep,
    ServicesDep,
    SettingsDep,
)
from serving.duplicates import METADATA_KEYS
from serving.review import officer_id
from serving.routes import errors, json_body
from serving.schemas import (
    EXAMPLE_TEXTS,
    MAX_ID_CHARS,
    ComplaintRemovedPublic,
    RegisterResponse,
    SimilarResponse,
)

router = APIRouter(tags=["complaints"])


ComplaintId = Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS,
                                  pattern=r"^[^\x00-\x1f\x7f]+$",
                                  description="the id the complaint was registered with")]

_EXAMPLES = {
    "two": {"summary": "两条投诉 (two complaints; the second repeats the first)",
            "value": {"complaints": [
                {"id": "20180408199687", "text": EXAMPLE_TEXTS[0], "channel": "12345热线",
                 "received_at": "2018-04-08T09:30:00+08:00", "location": "海口市秀英区向荣北路"},
                {"id": "20180408199701", "text": "秀英区向荣北路金美花园外面很多机动车违停",
                 "channel": "微信小程序", "received_at": "2018-04-08T10:02:00+08:00"}]}},
}


@router.post(
    "/v1/complaints", summary="Register complaints: route them and find what they repeat",
    description="Needs an `intake` key. Each complaint is validated and routed as in "
                "`/v1/route`, then stored and added to the similarity index. `duplicates` lists "
                "the registered complaints it likely repeats, found before it was added (an "
                "earlier complaint of the same request counts). An item that is invalid, fails "
                "routing or whose id is already registered (`already_registered`) gets an "
                "`error` and is not stored; the others are (HTTP 200, `registered` counts them).",
    openapi_extra=json_body("RouteRequest", _EXAMPLES),
    responses=errors(400, 401, 403, 409, 413, 422, 503))
async def register_complaints(request: Request, key: IntakeKey, settings: SettingsDep,
                              services: ServicesDep, registry: ComplaintsDep,
                              request_id: RequestIdDep) -> RegisterResponse:
    current = services.slot.current()  # 503 before reading the body if no model is loaded
    body = await read_json(request, settings.max_body_bytes)
    return await registry.register(
        body, max_complaints=settings.max_complaints,
        max_text_chars=settings.max_text_chars, request_id=request_id,
        model_version=current.version, actor=officer_id(key))


@router.get(
    "/v1/complaints/{complaint_id}/similar",
    summary="Registered complaints similar to a registered one",
    description="Any role. Registered complaints received within `window_days` before or after "
                "this one, most similar first, each marked `same_event` (above the calibrated threshold, "
                "or an exact repeat) or only similar; never the complaint itself. 404 if it is "
                "not registered (or was removed).",
    responses=errors(401, 404, 422, 503))
async def similar_complaints(
    key: AnyKey, complaint_id: ComplaintId, services: ServicesDep, registry: ComplaintsDep,
    k: Annotated[int | None, Query(ge=1, le=100, description="at most this many (default "
                                                               "HUYING_DUPLICATE_TOP_K)")] = None,
    window_days: Annotated[float | None, Query(gt=0, le=3650, description=(
        "how far back (default HUYING_DUPLICATE_WINDOW_DAYS)"))] = None,
    same_channel: Annotated[bool | None, Query(description=(
        "only complaints from the same channel (default: HUYING_DUPLICATE_MATCH)"))] = None,
    same_location: Annotated[bool | None, Query(description=(
        "only complaints with the same location (default: HUYING_DUPLICATE_MATCH)"))] = None,
) -> SimilarResponse:
    services.slot.current()  # 503 if no model is loaded
    policy = registry.duplicates.policy
    wanted = {"channel": same_channel, "location": same_location}
    match = tuple(m for m in METADATA_KEYS
                  if (m in policy.match if wanted[m] is None else wanted[m]))
    policy = replace(policy, match=match, top_k=k or policy.top_k,
                     window=policy.window if window_days is None else timedelta(days=window_days))
    return await registry.similar(complaint_id, policy=policy)


@router.delete(
    "/v1/complaints/{complaint_id}", summary="Remove a registered complaint",
    description="Needs an `intake` key. The complaint is marked removed in the store (its history "
                "stays) and leaves the similarity index: it is nobody's duplicate any more. 404 if "
                "it is not registered or already removed.",
    responses=errors(401, 403, 404, 503))
async def remove_complaint(key: IntakeKey, complaint_id: ComplaintId,
                           registry: ComplaintsDep) -> ComplaintRemovedPublic:
    return await registry.remove(complaint_id, actor=officer_id(key))
