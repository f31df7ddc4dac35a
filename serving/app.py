"""The FastAPI app factory: `create_app(settings)`; the router is loaded in the lifespan.

    from serving.app import create_app
    from serving.settings import load_settings
    app = create_app(load_settings(bundle="bundles/haikou12345-v1"))

Importing this module loads neither torch nor a model: everything heavy happens when the app
starts (uvicorn, TestClient, or `async with app.router.lifespan_context(app)`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic.json_schema import models_json_schema
from swagger_ui_bundle import swagger_ui_path

from model import versions
from model.errors import HuyingError
from model.router import Router
from serving.active_model import ActiveFollower
from serving.auth import KeyStore
from serving.batching import MicroBatcher
from serving.complaints import ComplaintRegistry
from serving.deps import Services
from serving.duplicates import DuplicatePolicy, DuplicateService
from serving.errors import install_error_handlers
from serving.metrics import Metrics
from serving.middleware import RequestContextMiddleware
from serving.model_slot import ModelSlot, RouterLoader
from serving.routes import (
    admin,
    cases,
    complaints,
    feedback,
    health,
    hot_issues,
    letters,
    model,
    review,
    route,
    stats,
    warnings,
)
from serving.routing import DuplicateFinder, RoutingService
from serving.schemas import ComplaintIn, FeedbackIn, ReviewAnswerIn, RouteRequest, SwapRequest
from serving.settings import Settings, batch_workers, load_settings
from serving.storage import open_store

log = logging.getLogger("huying.serving")

API_VERSION = "1"
DESCRIPTION = """\
呼应 (Huying) routes citizen complaints to category, subcategory and responsible department, with
the duty-list entry (time limit, legal basis) and a decision: `auto` (dispatch) or `review`
(a person checks first).

**Auth**: every `/v1` endpoint needs an API key, sent as `Authorization: Bearer <key>` or
`X-API-Key: <key>`. Roles: `intake` routes, `officer` reviews, `admin` manages models (and may do
everything). **Errors** always have the body `{"error": {"code", "message", "field"?}}`; every
response carries an `X-Request-ID` header.
"""


def bundle_to_serve(settings: Settings) -> Path:
    """HUYING_BUNDLE if set, else the version in bundles_dir/ACTIVE; errors say how to fix."""
    if settings.bundle is not None:
        return settings.bundle
    return versions.active_bundle_path(settings.bundles_dir)


def create_app(settings: Settings | None = None, *,
               duplicate_finder: DuplicateFinder | None = None,
               router_loader: RouterLoader | None = None) -> FastAPI:
    """A new app with its own metrics registry; `router_loader` is a seam for tests."""
    settings = settings if settings is not None else load_settings()
    metrics = Metrics()
    loader = router_loader or _loader(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        slot = ModelSlot(loader)
        batcher = MicroBatcher(slot.current, max_size=settings.batch_max_size,
                               max_wait_s=settings.batch_max_wait_ms / 1000,
                               max_queue=settings.queue_max, workers=batch_workers(settings),
                               deadline_s=settings.queue_deadline_ms / 1000,
                               on_batch=metrics.observe_batch,
                               on_wait=metrics.queue_wait.observe)
        # The store first: if the database cannot be opened, the server does not start.
        store = await asyncio.to_thread(open_store, settings.database_url)
        # The similarity index follows the served model (rebuilt for a new version in the
        # background, see serving/duplicates.py); it is ready before the app serves.
        duplicates = DuplicateService(store.sessions, settings.index_dir,
                                      DuplicatePolicy.from_settings(settings),
                                      save_interval_s=settings.index_save_interval_s,
                                      follow_interval_s=settings.index_follow_interval_s)

        def on_change(router: Router) -> None:
            metrics.set_model(router.version)
            duplicates.use_router(router)

        slot.on_change = on_change
        routing = RoutingService(batcher, metrics, duplicate_finder or duplicates, store.sessions)
        services = Services(
            settings=settings, metrics=metrics, keys=KeyStore(settings.api_keys_file), slot=slot,
            batcher=batcher, store=store,
            routing=routing, duplicates=duplicates,
            complaints=ComplaintRegistry(store.sessions, duplicates, routing))
        app.state.services = services
        batcher.start()
        duplicates.start()
        try:
            path = bundle_to_serve(settings)
            result = await slot.swap(path)
            log.info("serving model %s from %s (loaded in %.1f s)", result.version, path,
                     result.seconds)
        except HuyingError as exc:
            # Stay up, unready: /readyz says why, and an admin can swap a good bundle in.
            slot.load_error = str(exc)
            log.error("no model loaded: %s", exc)
        if slot.router is not None and not await asyncio.to_thread(duplicates.wait_ready):
            log.error("the similarity index is not ready (%s): duplicates stay empty until a "
                      "rebuild succeeds", duplicates.status()["error"])
        follower = ActiveFollower(slot, settings.bundles_dir, settings.model_follow_interval_s)
        services.active = follower
        await follower.start()
        following = (asyncio.create_task(follower.run(), name="huying-active-model")
                     if settings.model_follow_interval_s else None)
        try:
            yield
        finally:
            if following is not None:
                following.cancel()
            await batcher.close()
            await asyncio.to_thread(duplicates.close)
            store.close()
            if getattr(app.state, "services", None) is services:
                del app.state.services

    # /docs is served from the pinned swagger-ui-bundle package, not a CDN (works offline)
    app = FastAPI(title="Huying 呼应 — complaint routing API", version=API_VERSION,
                  description=DESCRIPTION, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    install_error_handlers(app)
    for module in (route, complaints, cases, hot_issues, stats, warnings, letters, model, admin,
                   health, review, feedback):
        app.include_router(module.router)
    app.include_router(review.pages)
    app.mount("/static/docs", StaticFiles(directory=swagger_ui_path), name="docs-assets")
    app.mount("/static", StaticFiles(directory=review.STATIC_DIR), name="static")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} — docs",
                                   swagger_js_url="/static/docs/swagger-ui-bundle.js",
                                   swagger_css_url="/static/docs/swagger-ui.css",
                                   swagger_favicon_url="/static/docs/favicon-32x32.png")

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _loader(settings: Settings) -> RouterLoader:
    def load(path: Path) -> Router:
        return Router.load(path, threads=settings.threads or None,
                           batch_size=settings.batch_max_size)

    return load


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema plus the bodies that handlers read themselves (serving/body.py)."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description,
                             routes=app.routes)
        _, defs = models_json_schema(
            [(m, "validation") for m in (RouteRequest, ComplaintIn, SwapRequest, ReviewAnswerIn,
                                         FeedbackIn)],
            ref_template="#/components/schemas/{model}")
        schema.setdefault("components", {}).setdefault("schemas", {}).update(defs["$defs"])
        app.openapi_schema = schema
    return app.openapi_schema
