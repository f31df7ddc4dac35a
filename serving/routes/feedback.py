"""POST /v1/feedback: an intake system reports the final routing of any complaint (role intake).

The answer is checked against the served model's duty list and kept as a submitted label, with
what the model had said about the complaint; review items of the complaint nobody holds close.
A retry with the same Idempotency-Key gets the first answer: one label, however often it is sent.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from serving import review
from serving.body import read_json
from serving.deps import (
    REPLAYED_HEADER,
    IdempotencyKeyHeader,
    IntakeKey,
    RouterDep,
    SessionsDep,
    SettingsDep,
    request_key,
)
from serving.routes import errors, json_body
from serving.schemas import FeedbackIn, ResponsePublic
from serving.storage import run_once

router = APIRouter(tags=["review"])

_EXAMPLES = {
    "correct": {"summary": "最终派单 (the final routing)",
                "value": {"complaint_id": "20180408199687", "kind": "correct",
                          "subcategory": "街面秩序/机动车乱停放",
                          "department": "公安局交通警察支队"}},
    "accept": {"summary": "按模型建议办结 (as the model said)",
               "value": {"complaint_id": "20180408199687", "kind": "accept"}},
}


@router.post(
    "/v1/feedback", summary="Report the final routing of a complaint",
    description="Needs an `intake` key. `kind` and labels as in a review answer; `text` only for "
                "a complaint this server never routed. The latest answer per complaint is the "
                "one retraining learns from. 422 names an unknown label's field.",
    openapi_extra=json_body("FeedbackIn", _EXAMPLES),
    responses=errors(400, 401, 403, 404, 413, 422, 503))
async def post_feedback(request: Request, response: Response, key: IntakeKey,
                        settings: SettingsDep, sessions: SessionsDep, router_: RouterDep,
                        idempotency_key: IdempotencyKeyHeader = None) -> ResponsePublic:
    raw = await read_json(request, settings.max_body_bytes)
    body = FeedbackIn.model_validate(raw)
    answer, replayed = await run_once(
        sessions, request_key(request, key, idempotency_key, raw), ResponsePublic,
        review.feedback, body, router_.bundle.taxonomy, source=key.name[:128] or key.key_id,
        actor=review.officer_id(key))
    if replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return answer
