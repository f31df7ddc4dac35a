"""The review queue (role officer) and the officer page `/review` that works it.

An officer lists the queue, claims an item (or the most urgent one), saves a draft, submits an
answer (accept, correct, not a complaint, split) or gives the item back. The store keeps claims
exclusive and writes every change to the audit log; these handlers only read the request, call
serving/review.py in a worker thread and return what it gives. Claim-next, draft, submit and
release take an optional Idempotency-Key: a retry, on any replica, gets the first answer.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse

from serving import review
from serving.body import read_json
from serving.deps import (
    REPLAYED_HEADER,
    IdempotencyKeyHeader,
    OfficerKey,
    RouterDep,
    ServicesDep,
    SessionsDep,
    SettingsDep,
    request_key,
)
from serving.routes import errors, json_body
from serving.schemas import (
    MAX_LABEL_CHARS,
    ResponsePublic,
    ReviewAnswerIn,
    ReviewItemPublic,
    ReviewItemSummaryPublic,
    ReviewQueuePublic,
)
from serving.storage import run, run_once
from serving.store.service import MAX_PAGE, QueueFilter

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(prefix="/v1/review", tags=["review"])
pages = APIRouter(include_in_schema=False)

# the id columns are 32-bit integers (PostgreSQL refuses larger ones)
ItemId = Annotated[int, PathParam(ge=1, le=2**31 - 1,
                                     description="the review item's id")]
_Text = Annotated[str | None, Query(max_length=MAX_LABEL_CHARS)]
_Age = Annotated[str | None, Query(max_length=16, description="e.g. 30min, 2h, 3d")]


async def _filters(department: _Text = None, category: _Text = None, channel: _Text = None,
                   min_age: _Age = None, max_age: _Age = None) -> QueueFilter:
    """Queue filters: the suggested department or category, the channel, and the complaint's
    age (min_age: at least this old; max_age: at most)."""
    return review.queue_filter(department=department, category=category, channel=channel,
                               min_age=min_age, max_age=max_age)


Filters = Annotated[QueueFilter, Depends(_filters)]
_ANSWER_EXAMPLES = {
    "accept": {"summary": "接受模型建议 (accept)", "value": {"kind": "accept"}},
    "correct": {"summary": "更正 (correct the subcategory; its category follows)",
                "value": {"kind": "correct", "subcategory": "街面秩序/机动车乱停放"}},
    "not_a_complaint": {"summary": "非投诉 (not a complaint)",
                        "value": {"kind": "not_a_complaint", "note": "咨询"}},
    "split": {"summary": "拆分 (split into two complaints)",
              "value": {"kind": "split", "parts": [{"category": "交通管理"},
                                                   {"category": "市容环境"}]}},
}


@router.get("/queue", summary="The review queue, most urgent first",
            description="Items free to claim (or, with `status`, claimed, done, all) matching the "
                        "filters, ordered by SLA due time, then by least confidence.",
            responses=errors(401, 403, 422, 503))
async def list_queue(key: OfficerKey, sessions: SessionsDep, filters: Filters,
                     status: Annotated[Literal["open", "claimed", "done", "all"],
                                       Query()] = "open",
                     limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
                     offset: Annotated[int, Query(ge=0, le=10**9)] = 0) -> ReviewQueuePublic:
    chosen = replace(filters, status=None if status == "all" else status)
    return await run(sessions, review.queue, chosen, limit=limit, offset=offset)


@router.get("/mine", summary="The items you hold now", responses=errors(401, 403, 503))
async def my_items(key: OfficerKey, sessions: SessionsDep) -> list[ReviewItemSummaryPublic]:
    return await run(sessions, review.mine, review.officer_id(key))


@router.post("/claim-next", summary="Claim the most urgent free item matching the filters",
             description="204 when no item is free.", response_model=ReviewItemSummaryPublic,
             responses={204: {"description": "No free item matches"}, **errors(401, 403, 422, 503)})
async def claim_next(request: Request, response: Response, key: OfficerKey,
                     sessions: SessionsDep, filters: Filters,
                     idempotency_key: IdempotencyKeyHeader = None
                     ) -> ReviewItemSummaryPublic | Response:
    item, replayed = await run_once(sessions, request_key(request, key, idempotency_key),
                                    ReviewItemSummaryPublic, review.claim_next,
                                    review.officer_id(key), filters)
    _mark(response, replayed)
    return Response(status_code=204) if item is None else item


@router.post("/items/{item_id}/claim", summary="Claim one item (or renew your claim)",
             description="409 if another officer holds it or it is done.",
             responses=errors(401, 403, 404, 409, 422, 503))
async def claim(item_id: ItemId, key: OfficerKey,
                sessions: SessionsDep) -> ReviewItemSummaryPublic:
    return await run(sessions, review.claim, item_id, review.officer_id(key))


@router.get("/items/{item_id}", summary="One item: suggestions, duty-list entry, similar cases, "
                                        "history", responses=errors(401, 403, 404, 422, 503))
async def item(item_id: ItemId, key: OfficerKey, sessions: SessionsDep, router_: RouterDep,
               services: ServicesDep) -> ReviewItemPublic:
    return await run(sessions, review.detail, item_id, review.officer_id(key),
                            router_.bundle.taxonomy, services.duplicates)


@router.put("/items/{item_id}/draft", summary="Save your draft answer (claims the item)",
            description="Drafts are not checked against the duty list and never become labels.",
            openapi_extra=json_body("ReviewAnswerIn", _ANSWER_EXAMPLES),
            responses=errors(400, 401, 403, 404, 409, 413, 422, 503))
async def save_draft(item_id: ItemId, request: Request, response: Response, key: OfficerKey,
                     settings: SettingsDep, sessions: SessionsDep,
                     idempotency_key: IdempotencyKeyHeader = None) -> ResponsePublic:
    raw = await read_json(request, settings.max_body_bytes)
    body = ReviewAnswerIn.model_validate(raw)
    answer, replayed = await run_once(sessions, request_key(request, key, idempotency_key, raw),
                                      ResponsePublic, review.save_draft, item_id,
                                      review.officer_id(key), body)
    _mark(response, replayed)
    return answer


@router.post("/items/{item_id}/submit", summary="Submit your answer: the item is done",
             description="Accept the suggestion, correct any of category/subcategory/department "
                         "(checked against the served model's duty list: 422 names the field), "
                         "mark it not a complaint, or split it into parts. 409 if another officer "
                         "holds the item or it is done.",
             openapi_extra=json_body("ReviewAnswerIn", _ANSWER_EXAMPLES),
             responses=errors(400, 401, 403, 404, 409, 413, 422, 503))
async def submit(item_id: ItemId, request: Request, response: Response, key: OfficerKey,
                 settings: SettingsDep, sessions: SessionsDep, router_: RouterDep,
                 idempotency_key: IdempotencyKeyHeader = None) -> ResponsePublic:
    raw = await read_json(request, settings.max_body_bytes)
    body = ReviewAnswerIn.model_validate(raw)
    answer, replayed = await run_once(sessions, request_key(request, key, idempotency_key, raw),
                                      ResponsePublic, review.submit, item_id,
                                      review.officer_id(key), body, router_.bundle.taxonomy)
    _mark(response, replayed)
    return answer


@router.post("/items/{item_id}/release", summary="Give the item back (your draft is discarded)",
             responses=errors(401, 403, 404, 409, 422, 503))
async def release(item_id: ItemId, request: Request, response: Response, key: OfficerKey,
                  sessions: SessionsDep, idempotency_key: IdempotencyKeyHeader = None
                  ) -> ReviewItemSummaryPublic:
    item, replayed = await run_once(sessions, request_key(request, key, idempotency_key),
                                    ReviewItemSummaryPublic, review.release, item_id,
                                    review.officer_id(key))
    _mark(response, replayed)
    return item


def _mark(response: Response, replayed: bool) -> None:
    """Say when an answer is the stored answer of an earlier request with the same key."""
    if replayed:
        response.headers[REPLAYED_HEADER] = "true"


@pages.get("/review")
async def review_page() -> FileResponse:
    """The officer page (plain HTML, one script, one stylesheet: no build step)."""
    return FileResponse(STATIC_DIR / "review.html", media_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-cache"})
