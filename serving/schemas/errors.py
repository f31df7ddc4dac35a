"""The error bodies: one item's error in a result, and every 4xx/5xx body (ErrorPublic)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    """What went wrong with one complaint (in a RouteResult) or a whole request (ErrorPublic)."""

    code: str = Field(examples=["text_too_long"])
    message: str = Field(examples=["complaints[0].text: text has 6012 characters; the limit is "
                                   "5000 (HUYING_MAX_TEXT_CHARS)"])
    field: str | None = Field(None, examples=["complaints[0].text"])


class RequestErrorDetail(ErrorDetail):
    request_id: str | None = Field(None, description="also in the X-Request-ID header")


class ErrorPublic(BaseModel):
    """Every 4xx/5xx body: {"error": {"code", "message", "field"?, "request_id"?}}."""

    error: RequestErrorDetail
