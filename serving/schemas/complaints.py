"""The registry's bodies (/v1/complaints): registered, similar, removed."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from serving.schemas.routing import DuplicatePublic, RouteResponse


class RegisterResponse(RouteResponse):
    """POST /v1/complaints: per complaint its routing and the registered complaints it repeats
    (found before it was added); `registered` counts the complaints stored by this request."""

    registered: int = Field(description="complaints registered by this request (results with "
                                        "a routing)")


class SimilarResponse(BaseModel):
    """GET /v1/complaints/{id}/similar: registered complaints like this one, never itself."""

    id: str
    model_version: str
    window_days: float = Field(description="searched the complaints received up to this many "
                                           "days before or after this one")
    duplicates: list[DuplicatePublic]


class ComplaintRemovedPublic(BaseModel):
    """DELETE /v1/complaints/{id}: removed from the store (kept for history) and the index."""

    id: str
    removed: bool = True
    removed_at: datetime | None = None
