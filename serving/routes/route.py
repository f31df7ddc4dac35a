"""POST /v1/route: complaints in, one routing (or one error) per complaint out."""

from __future__ import annotations

from fastapi import APIRouter, Request

from serving.body import read_json
from serving.deps import IntakeKey, RequestIdDep, ServicesDep, SettingsDep
from serving.routes import errors, json_body
from serving.schemas import EXAMPLE_TEXTS, RouteResponse

router = APIRouter(tags=["routing"])

_EXAMPLES = {
    "one": {"summary": "一条投诉 (one complaint)",
            "value": {"complaints": [{"id": "20180408199687", "text": EXAMPLE_TEXTS[0],
                                      "channel": "12345热线"}]}},
    "batch": {"summary": "批量 (a batch; the empty text gets a per-item error)",
              "value": {"complaints": [
                  {"id": "a-1", "text": EXAMPLE_TEXTS[1], "channel": "微信小程序",
                   "received_at": "2018-04-08T09:30:00+08:00"},
                  {"id": "a-2", "text": EXAMPLE_TEXTS[2], "location": "海口市龙华区南沙路"},
                  {"id": "a-3", "text": "   "}]}},
}


@router.post(
    "/v1/route", summary="Route complaints to category, subcategory and department",
    description="Needs an `intake` key. Each complaint is validated on its own: a bad item gets "
                "an `error` in its result and the others are routed (HTTP 200, `errors` counts "
                "them). A body that is not `{\"complaints\": [...]}` at all is refused whole. "
                "Concurrent requests are micro-batched into one model call.",
    openapi_extra=json_body("RouteRequest", _EXAMPLES),
    responses=errors(400, 401, 403, 413, 422, 503))
async def route_complaints(request: Request, key: IntakeKey, settings: SettingsDep,
                           services: ServicesDep, request_id: RequestIdDep) -> RouteResponse:
    current = services.slot.current()  # 503 before reading the body if no model is loaded
    body = await read_json(request, settings.max_body_bytes)
    return await services.routing.route(
        body, max_complaints=settings.max_complaints, max_text_chars=settings.max_text_chars,
        request_id=request_id, model_version=current.version)
