"""GET /v1/taxonomy and GET /v1/model: what the served model routes into, and how good it is."""

from __future__ import annotations

from fastapi import APIRouter

from serving.deps import AnyKey, RouterDep
from serving.model_info import describe_model, describe_taxonomy
from serving.routes import errors
from serving.schemas import ModelPublic, TaxonomyPublic

router = APIRouter(tags=["model"])


@router.get("/v1/taxonomy", summary="The duty list the served model routes into",
            description="Categories, departments and per subcategory its default department, "
                        "time limit and legal basis. Any role.",
            responses=errors(401, 503))
async def taxonomy(key: AnyKey, router_: RouterDep) -> TaxonomyPublic:
    return describe_taxonomy(router_)


@router.get("/v1/model", summary="The served model: version, metrics, model card",
            description="Any role.", responses=errors(401, 503))
async def model(key: AnyKey, router_: RouterDep) -> ModelPublic:
    return describe_model(router_)
