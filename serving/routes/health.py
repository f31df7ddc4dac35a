"""Liveness, readiness and Prometheus metrics: no API key, for load balancers and scrapers."""

from __future__ import annotations

from fastapi import APIRouter, Response

from serving.deps import ServicesDep
from serving.errors import ModelNotReady
from serving.metrics import CONTENT_TYPE
from serving.routes import errors
from serving.schemas import HealthPublic

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> HealthPublic:
    return HealthPublic(status="alive")


@router.get("/readyz", summary="A model is loaded and complaints can be routed",
            responses=errors(503))
async def readyz(services: ServicesDep) -> HealthPublic:
    router_ = services.slot.router
    if router_ is None:
        raise ModelNotReady(f"not ready: {services.slot.load_error}")
    return HealthPublic(status="ready", model_version=router_.version)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text"}})
async def metrics(services: ServicesDep) -> Response:
    services.metrics.queue_depth.set(services.batcher.depth)
    return Response(services.metrics.render(), media_type=CONTENT_TYPE)
