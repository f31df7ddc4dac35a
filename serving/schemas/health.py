"""Liveness and readiness bodies (/healthz, /readyz), with the similarity index's state."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field


class SimilarityIndexPublic(BaseModel):
    """The similarity index of registered complaints (serving/duplicates.py) that duplicates
    are searched in. It follows the served model: a new version gets an index of its own, built
    in the background while the previous one keeps answering."""

    ready: bool = Field(description="it holds the embeddings of the served model version")
    model_version: str | None = Field(description="the model version whose embeddings it holds; "
                                                  "null until its first build has finished")
    size: int = Field(description="registered complaints in it")
    rebuilding_for: str | None = Field(default=None, description=(
        "the served model version it is being rebuilt for, while the index of `model_version` "
        "still answers"))
    error: str | None = Field(default=None,
                              description="why the last build failed (it is retried)")
    last_build: str | None = Field(default=None, description=(
        "how the index in use was made: loaded from its saved copy (+ what the store added), or "
        "rebuilt from the store and why (no saved copy, unusable, holding removed complaints)"))
    save_error: str | None = Field(default=None, description=(
        "why the last save of the index to disk failed (e.g. the disk is full): it serves from "
        "memory, the save is retried, and a restart rebuilds what was not saved from the store"))

    @classmethod
    def of(cls, status: Mapping[str, Any]) -> SimilarityIndexPublic:
        """From DuplicateService.status()."""
        rebuilding = not status["ready"] and status["model_version"] is not None
        return cls(ready=status["ready"], model_version=status["model_version"],
                   size=status["size"], error=status["error"], last_build=status.get("last_build"),
                   save_error=status.get("save_error"),
                   rebuilding_for=status["serving_version"] if rebuilding else None)


class HealthPublic(BaseModel):
    status: Literal["alive", "ready"]
    model_version: str | None = None
    similarity_index: SimilarityIndexPublic | None = Field(default=None, description=(
        "/readyz only: the index duplicates are searched in (null on a server without one)"))
    active_version: str | None = Field(default=None, description=(
        "/readyz only: the version bundles/ACTIVE names now; every replica serves it within "
        "HUYING_MODEL_FOLLOW_INTERVAL_S plus a load (null: no pointer, or HUYING_BUNDLE)"))
    following_error: str | None = Field(default=None, description=(
        "/readyz only: why this replica could not swap in the active version (it keeps serving "
        "model_version)"))
