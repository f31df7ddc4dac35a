"""FastAPI dependencies and their Annotated aliases: settings, services, the router, API keys.

    @router.post("/v1/route")
    async def route(key: IntakeKey, settings: SettingsDep, services: ServicesDep): ...

Tests override `get_settings` (app.dependency_overrides) to change limits per request. All are
`async def`: FastAPI runs plain `def` dependencies in a thread pool, a thread hop per dependency
per request, which cost more than the work they do (measured: benchmarks/load_bench.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from model.router import Router
from serving.active_model import ActiveFollower
from serving.auth import KeyStore, Principal, Role, presented_key, require
from serving.batching import MicroBatcher
from serving.complaints import ComplaintRegistry
from serving.duplicates import DuplicateService
from serving.errors import ModelNotReady, StoreUnavailable
from serving.metrics import Metrics
from serving.model_slot import ModelSlot
from serving.routing import RoutingService
from serving.settings import Settings
from serving.storage import Store
from serving.store.idempotency import RequestKey


@dataclass
class Services:
    """What the lifespan builds once and every request uses."""

    settings: Settings
    metrics: Metrics
    keys: KeyStore
    slot: ModelSlot
    batcher: MicroBatcher
    routing: RoutingService
    store: Store | None = None  # the database (serving/storage.py: open_store)
    duplicates: DuplicateService | None = None  # the similarity index of registered complaints
    complaints: ComplaintRegistry | None = None  # behind /v1/complaints
    active: ActiveFollower | None = None  # follows bundles_dir/ACTIVE (serving/active_model.py)


async def get_complaints(request: Request) -> ComplaintRegistry:
    registry = (await get_services(request)).complaints
    if registry is None:
        raise StoreUnavailable("complaint registration needs the store, which is not open")
    return registry


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_services(request: Request) -> Services:
    services = getattr(request.app.state, "services", None)
    if services is None:  # a request before the lifespan ran (or after it ended)
        raise ModelNotReady("the server is starting or stopping; retry in a moment")
    return services


async def get_router(request: Request) -> Router:
    return (await get_services(request)).slot.current()


async def get_sessions(request: Request) -> sessionmaker[Session]:
    """The store's session factory; one session per unit of work (serving.storage.run)."""
    store = (await get_services(request)).store
    if store is None:
        raise StoreUnavailable("this server has no store; set HUYING_DATABASE_URL")
    return store.sessions


async def get_request_id(request: Request) -> str:
    return getattr(request.state, "request_id", "")


SettingsDep = Annotated[Settings, Depends(get_settings)]
ServicesDep = Annotated[Services, Depends(get_services)]
RouterDep = Annotated[Router, Depends(get_router)]
RequestIdDep = Annotated[str, Depends(get_request_id)]
SessionsDep = Annotated[sessionmaker[Session], Depends(get_sessions)]
ComplaintsDep = Annotated[ComplaintRegistry, Depends(get_complaints)]

# auto_error=False: a missing key is our 401 with our message, not FastAPI's 403. Declared as
# security schemes so /docs shows an "Authorize" button for either header.
_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <key>")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: <key>")


async def authenticate(
    request: Request,
    # Only for the OpenAPI schema; the headers are parsed below so a malformed one gets a clear 401.
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
    header: Annotated[str | None, Security(_api_key)] = None,
) -> Principal:
    key = presented_key(request.headers.get("authorization"), request.headers.get("x-api-key"))
    return (await get_services(request)).keys.authenticate(key)


def _role(role: Role) -> Callable[[Principal], Awaitable[Principal]]:
    async def dependency(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        return require(principal, role)

    dependency.__name__ = f"require_{role.value}"
    return dependency


AnyKey = Annotated[Principal, Depends(authenticate)]
IntakeKey = Annotated[Principal, Depends(_role(Role.intake))]
OfficerKey = Annotated[Principal, Depends(_role(Role.officer))]
AdminKey = Annotated[Principal, Depends(_role(Role.admin))]

# A retried write with the same key gets the first answer (serving/store/idempotency.py).
IdempotencyKeyHeader = Annotated[str | None, Header(
    alias="Idempotency-Key", min_length=1, max_length=255, pattern=r"^[!-~]+$",
    description="Optional, printable ASCII: a retry of this write with the same key (on any "
                "replica, within 24 h) gets the first answer instead of writing again; the same "
                "key with another request is a 422.")]
REPLAYED_HEADER = "Idempotent-Replayed"


def request_key(request: Request, principal: Principal, key: str | None,
                body: Any = None) -> RequestKey | None:
    """The key of this request for serving.storage.run_once: whose, which request, what body
    (the query string counts as part of it)."""
    if key is None:
        return None
    return RequestKey(actor=principal.key_id, key=key,
                      request=f"{request.method} {request.url.path}"[:255],
                      body={"body": body, "query": sorted(request.query_params.multi_items())})
