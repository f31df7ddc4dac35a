"""Liveness, readiness and Prometheus metrics: no API key, for load balancers and scrapers."""

from __future__ import annotations

import asyncio
import hmac

from fastapi import APIRouter, Request, Response

from model import versions
from model.errors import HuyingError
from serving.auth import Role, presented_key, require
from serving.deps import ServicesDep, SettingsDep
from serving.errors import ModelNotReady
from serving.metrics import CONTENT_TYPE
from serving.routes import errors
from serving.schemas import HealthPublic, SimilarityIndexPublic
from serving.settings import Settings

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive (and which model it serves, if any)",
            response_model_exclude={"similarity_index", "active_version", "following_error"})
async def healthz(services: ServicesDep) -> HealthPublic:
    router_ = services.slot.router
    return HealthPublic(status="alive", model_version=None if router_ is None else router_.version)


@router.get("/readyz", summary="A model is loaded, complaints can be routed and their duplicates "
                               "searched",
            description="503 while no model is loaded, or while the similarity index has not "
                        "been built yet (or its build failed). During the rebuild that follows a "
                        "model swap the previous index still answers: 200, and "
                        "`similarity_index.rebuilding_for` names the new version.",
            responses=errors(503))
async def readyz(services: ServicesDep) -> HealthPublic:
    router_ = services.slot.router
    if router_ is None:
        raise ModelNotReady(f"not ready: {services.slot.load_error}")
    duplicates = services.duplicates
    index = None if duplicates is None else SimilarityIndexPublic.of(duplicates.status())
    if index is not None and index.model_version is None:  # no index to search at all
        raise ModelNotReady(_no_index(index, router_.version, services.settings))
    active = services.active
    pointer = None
    if active is not None:
        try:
            pointer = await asyncio.to_thread(versions.active_version, active.bundles_dir)
        except HuyingError:  # an unreadable pointer: the model served is still served
            pointer = None
    return HealthPublic(status="ready", model_version=router_.version, similarity_index=index,
                        active_version=pointer,
                        following_error=active.error if active is not None else None)


def _no_index(index: SimilarityIndexPublic, version: str, settings: Settings) -> str:
    if index.error is None:
        return (f"not ready: the similarity index is being built for the first time (model "
                f"{version}: every registered complaint is embedded); retry in a moment")
    return (f"not ready: the similarity index failed to build ({index.error}); it is retried "
            f"every {settings.index_save_interval_s:g} s (HUYING_INDEX_SAVE_INTERVAL_S): fix the "
            "cause (see the server log for the traceback)")


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            description="Open unless HUYING_METRICS_KEY is set; then send it as a Bearer token "
                        "(an admin key works too).",
            responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text"},
                       **errors(401, 403)})
async def metrics(request: Request, services: ServicesDep, settings: SettingsDep) -> Response:
    if settings.metrics_key is not None:
        presented = presented_key(request.headers.get("authorization"),
                                  request.headers.get("x-api-key"))
        if presented is None or not hmac.compare_digest(
                presented.encode(), settings.metrics_key.get_secret_value().encode()):
            require(services.keys.authenticate(presented), Role.admin)
    services.metrics.queue_depth.set(services.batcher.depth)
    return Response(services.metrics.render(), media_type=CONTENT_TYPE)
