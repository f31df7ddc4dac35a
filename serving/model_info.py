"""Model services: describe the served model and its duty list, list bundles, activate one."""

from __future__ import annotations

import asyncio
import weakref
from pathlib import Path

from model import versions
from model.errors import InvalidInput
from model.router import Router
from serving.model_slot import ModelSlot
from serving.schemas import (
    BundleSummaryPublic,
    DutyEntryPublic,
    ModelListResponse,
    ModelPublic,
    SwapRequest,
    SwapResponse,
    TaxonomyPublic,
)

# Built once per loaded router (they are immutable) and dropped with it after a swap.
_models: weakref.WeakKeyDictionary[Router, ModelPublic] = weakref.WeakKeyDictionary()
_taxonomies: weakref.WeakKeyDictionary[Router, TaxonomyPublic] = weakref.WeakKeyDictionary()


def describe_model(router: Router) -> ModelPublic:
    if router not in _models:
        bundle = router.bundle
        m = bundle.manifest
        try:  # the card is read when first asked for; the directory may be gone since loading
            card = (bundle.path / "model_card.md").read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            card = f"(model card unavailable: {exc})"
        _models[router] = ModelPublic(
            version=router.version, created=_opt(m.get("created")), dataset=_opt(m.get("dataset")),
            data_hash=_opt(m.get("data_hash")), base_encoder=_opt(m.get("base_encoder")),
            precision=_opt(m.get("precision")), heads=list(bundle.heads),
            labels={h: len(s) for h, s in bundle.spaces.items()}, metrics=bundle.metrics,
            model_card=card)
    return _models[router]


def describe_taxonomy(router: Router) -> TaxonomyPublic:
    if router not in _taxonomies:
        t = router.bundle.taxonomy
        _taxonomies[router] = TaxonomyPublic(
            model_version=router.version, name=t.name, categories=list(t.categories),
            departments=list(t.departments),
            entries=[DutyEntryPublic(category=e.category, subcategory=e.subcategory,
                                     department=e.department, time_limit=e.time_limit,
                                     legal_basis=e.legal_basis, description=e.description)
                     for e in t.entries])
    return _taxonomies[router]


async def activate(slot: ModelSlot, bundles_dir: Path, swap: SwapRequest,
                   actor: str | None = None) -> SwapResponse:
    """Swap in the bundle named by `swap`. By version it is a promotion (model/versions.py):
    refused (409) if its retraining gate failed unless forced, and recorded with `actor`."""
    if (swap.version is None) == (swap.path is None):
        raise InvalidInput('give exactly one of "version" (a bundle in the bundles directory) or '
                           '"path" (a bundle directory)', field="version")
    if swap.version is None:
        if swap.force or swap.reason:
            raise InvalidInput('"force" and "reason" apply to a promotion by "version"',
                               field="force")
        result = await slot.swap(Path(str(swap.path)))
    else:
        promotion = await asyncio.to_thread(versions.plan_promotion, bundles_dir, swap.version,
                                            force=swap.force, reason=swap.reason)
        result = await slot.swap(promotion.path)  # the probes are checked before it serves
        await asyncio.to_thread(versions.record_promotion, bundles_dir, promotion, actor)
    return SwapResponse(version=result.version, previous_version=result.previous_version,
                        active_pointer_updated=swap.version is not None, seconds=result.seconds)


async def list_models(slot: ModelSlot, bundles_dir: Path) -> ModelListResponse:
    summaries = await asyncio.to_thread(versions.list_bundles, bundles_dir)
    serving = slot.router.version if slot.router is not None else None
    active = await asyncio.to_thread(versions.active_version, bundles_dir)
    return ModelListResponse(serving=serving, active=active, bundles=[
        BundleSummaryPublic(version=s.version, created=s.created, dataset=s.dataset,
                            precision=s.precision, accuracy=s.accuracy, auto_share=s.auto_share,
                            active=s.active, serving=s.version == serving, gate=s.gate,
                            error=s.error)
        for s in summaries])


def _opt(value: object) -> str | None:
    return None if value is None else str(value)
