"""The served model and its duty list (/v1/model, /v1/taxonomy) and model management (admin)."""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Annotated, Any, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, create_model, field_validator

from model.taxonomy import DutyEntry
from serving.schemas.validators import clean_text


def _fields_of(dataclass: type[Any]) -> dict[str, Any]:
    """A dataclass's fields as pydantic field definitions: (type, default), `...` if required."""
    types = get_type_hints(dataclass)
    return {f.name: (types[f.name], ... if f.default is MISSING else f.default)
            for f in fields(dataclass)}


# The duty list's own fields (model/taxonomy.py), so the two cannot drift apart.
class DutyEntryPublic(create_model("DutyEntryFields", **_fields_of(DutyEntry))):  # type: ignore[misc]
    """One entry of the duty list: a subcategory and who handles it, how fast, on what basis."""


class TaxonomyPublic(BaseModel):
    """The duty list the served model routes into."""

    model_version: str
    name: str = Field(examples=["haikou12345"])
    categories: list[str] = Field(examples=[["交通管理", "市容环境"]])
    departments: list[str] = Field(examples=[["公安局交通警察支队", "市政维修管理中心"]])
    entries: list[DutyEntryPublic]


class ModelPublic(BaseModel):
    """The served model: version, provenance, evaluation metrics and its model card."""

    version: str = Field(examples=["haikou12345-v1"])
    created: str | None = None
    dataset: str | None = Field(None, examples=["haikou12345"])
    data_hash: str | None = None
    base_encoder: str | None = None
    precision: str | None = Field(None, examples=["int8"])
    heads: list[str] = Field(examples=[["category", "subcategory", "department"]])
    labels: dict[str, int] = Field(description="label count per head")
    metrics: dict[str, Any]
    model_card: str


class SwapRequest(BaseModel):
    """Give exactly one: `version` (a directory in HUYING_BUNDLES_DIR, promoted through its
    retraining gate) or `path` (any bundle, served without touching bundles/ACTIVE)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"version": "haikou12345-v2"}, {"path": "/srv/huying/bundles/trial-7"},
                     {"version": "haikou12345-v3", "force": True,
                      "reason": "department gate failed on 30 rows; approved by the duty lead"}]})

    version: Annotated[str | None, Field(strict=True, max_length=128)] = None
    path: Annotated[str | None, Field(strict=True, max_length=4096)] = None
    force: Annotated[bool, Field(strict=True, description=(
        "promote a version whose retraining gate failed; the history records it"))] = False
    reason: Annotated[str | None, Field(strict=True, max_length=500,
                                        description="why, for the history")] = None

    @field_validator("version", "path", "reason")
    @classmethod
    def _unicode(cls, value: str | None, info: ValidationInfo) -> str | None:
        return clean_text(value, str(info.field_name))


class SwapResponse(BaseModel):
    version: str
    previous_version: str | None
    active_pointer_updated: bool = Field(description="bundles/ACTIVE now names this version")
    seconds: float


class BundleSummaryPublic(BaseModel):
    version: str
    created: str | None = None
    dataset: str | None = None
    precision: str | None = None
    accuracy: dict[str, float] = Field(default_factory=dict,
                                       description="test-split accuracy per head")
    auto_share: float | None = None
    active: bool = Field(description="named in bundles/ACTIVE")
    serving: bool = Field(description="the version this server routes with now")
    gate: str | None = Field(default=None, description=(
        "pass or fail: the verdict of `huying retrain` when it made this version"))
    error: str | None = None


class ModelListResponse(BaseModel):
    serving: str | None
    active: str | None
    bundles: list[BundleSummaryPublic]
