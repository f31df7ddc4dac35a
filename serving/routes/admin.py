"""Model management (admin role): list the bundles on disk, hot-swap the served one."""

from __future__ import annotations

from fastapi import APIRouter, Request

from serving.body import read_json
from serving.deps import AdminKey, ServicesDep, SettingsDep
from serving.model_info import activate, list_models
from serving.review import officer_id
from serving.routes import errors, json_body
from serving.schemas import ModelListResponse, SwapRequest, SwapResponse

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.post(
    "/model", summary="Load another bundle and swap it in without downtime",
    description="Give `version` (a directory of HUYING_BUNDLES_DIR: a promotion, recorded in "
                "bundles/HISTORY with the key and `reason`) or `path`. A version whose retraining "
                "gate failed is refused (409) unless `force` is true. The bundle is loaded and "
                "must answer its recorded probe complaints before it replaces the served one; "
                "requests in flight finish on the old model. A broken bundle is refused (422) "
                "and the old model keeps serving.",
    openapi_extra=json_body("SwapRequest"), responses=errors(400, 401, 403, 404, 409, 413, 422))
async def swap_model(request: Request, key: AdminKey, settings: SettingsDep,
                     services: ServicesDep) -> SwapResponse:
    swap = SwapRequest.model_validate(await read_json(request, settings.max_body_bytes))
    return await activate(services.slot, settings.bundles_dir, swap, actor=officer_id(key))


@router.get("/models", summary="Bundles on disk, with headline metrics and which is active",
            responses=errors(401, 403))
async def models(key: AdminKey, settings: SettingsDep, services: ServicesDep) -> ModelListResponse:
    return await list_models(services.slot, settings.bundles_dir)
