"""Reminder letters (提醒函, role officer): one department's period as Markdown, HTML or PDF."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from fastapi.responses import Response
from sqlalchemy.orm import Session

from model.duty import check_labels
from serving import hot_issues, letter_pdf, letters
from serving.deps import OfficerKey, RouterDep, SessionsDep, SettingsDep
from serving.routes import errors
from serving.schemas import MAX_LABEL_CHARS
from serving.storage import run

router = APIRouter(prefix="/v1/letters", tags=["reminder letters"])
MEDIA = {"md": "text/markdown; charset=utf-8", "html": "text/html; charset=utf-8",
         "pdf": "application/pdf"}


def _render(session: Session, department: str, since: date, until: date, zone: ZoneInfo,
            districts: tuple[str, ...], fmt: str) -> bytes:
    letter = letters.build_letter(session, department, since, until, zone, districts)
    if fmt == "pdf":
        return letter_pdf.render(letter)
    return (letter.markdown() if fmt == "md" else letter.html()).encode("utf-8")


@router.get(
    "/{department}", summary="A department's reminder letter for a period",
    description="Needs an `officer` key. Its numbers (complaints, share closed, time to close, "
                "overdue, repeats), its early warnings (run POST /v1/warnings/detect for the "
                "period's days first), the events its complaints repeat and its overdue cases, "
                "with example complaints, in Chinese; every sentence is written from a stored "
                "number. 404 if no complaint of the period went to the department, 422 for a "
                "department not in the served duty list (with suggestions) or a bad period.",
    responses={200: {"content": {m: {} for m in MEDIA.values()}},
               **errors(401, 403, 404, 422, 503)})
async def get_letter(
    key: OfficerKey, sessions: SessionsDep, settings: SettingsDep, router_: RouterDep,
    department: Annotated[str, PathParam(min_length=1, max_length=MAX_LABEL_CHARS,
                                         pattern=r"^[^\x00-\x1f\x7f]+$")],
    since: Annotated[date | None, Query(alias="from")] = None,
    until: Annotated[date | None, Query(alias="to")] = None,
    format: Literal["md", "html", "pdf"] = "md",
) -> Response:
    zone = ZoneInfo(settings.time_zone)
    since, until = hot_issues.period(since, until, zone)
    taxonomy = router_.bundle.taxonomy
    if taxonomy.departments:
        check_labels(taxonomy, {"department": department}, "")
    content = await run(sessions, _render, department, since, until, zone, settings.districts,
                        format)
    name = quote(f"提醒函-{department}-{since}-{until}.{format}")
    return Response(content, media_type=MEDIA[format],
                    headers={"Content-Disposition": f"inline; filename*=UTF-8''{name}"})
