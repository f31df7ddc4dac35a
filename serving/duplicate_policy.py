"""How duplicates are judged: the search policy (window, how many, which metadata must match) and
the thresholds in force for a model (settings, else the bundle's duplicates.json, else defaults)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from model.errors import BundleError
from model.pair_model import PairModel
from model.router import Router

log = logging.getLogger("huying.serving")

# Thresholds used when neither a setting nor the bundle's duplicates.json gives one (`huying
# train` calibrates one for every bundle it builds). Measured with `huying duplicates --model
# bundles/haikou12345-quick-1` (blended similarity; 804 near-duplicate pairs from real follow-ups
# and repeated messages, split by time): 0.4917 had the best F1 on the calibration half (0.95)
# and gave precision 0.97, recall 0.80 on the evaluation half; 0.461 kept 95% of the calibration
# positives. Each model has its own scale (the full bundle's threshold is 0.437).
DEFAULT_SAME_EVENT = 0.49
DEFAULT_FLOOR = 0.46


@dataclass(frozen=True)
class DuplicatePolicy:
    """How duplicates are searched: window, how many, which metadata must match, thresholds."""

    window: timedelta = timedelta(days=30)
    top_k: int = 5
    match: tuple[str, ...] = ()  # metadata keys that must be equal (channel, location)
    threshold: float | None = None  # None: the bundle's duplicates.json, else the default
    floor: float | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> DuplicatePolicy:
        return cls(window=timedelta(days=settings.duplicate_window_days),
                   top_k=settings.duplicate_top_k, match=tuple(settings.duplicate_match),
                   threshold=settings.duplicate_threshold, floor=settings.duplicate_floor)


@dataclass(frozen=True)
class Thresholds:
    same_event: float
    floor: float
    source: str  # "settings", "bundle <version>", or "default"


def thresholds_for(router: Router | None, policy: DuplicatePolicy) -> Thresholds:
    """The thresholds for the index of `router`'s model (None: no index yet): the policy's
    (from settings) where set, else the bundle's duplicates.json, else the defaults above."""
    same, floor, source = DEFAULT_SAME_EVENT, DEFAULT_FLOOR, "default"
    record = None if router is None else router.bundle.duplicate_thresholds()
    if router is not None and record and "pair_model" in record and pair_model_of(router) is None:
        record = None  # its thresholds are on the unusable pair model's scale, not the blend's
    if record is not None:
        try:
            same, floor = float(record["same_event"]), float(record["floor"])
            source = f"bundle {router.version}"  # type: ignore[union-attr]
        except (ValueError, KeyError, TypeError) as exc:
            log.error("duplicates.json of %s is unreadable (%s); using the default duplicate "
                      "thresholds", router.version, exc)  # type: ignore[union-attr]
    if policy.threshold is not None:
        same, source = policy.threshold, "settings"
    if policy.floor is not None:
        floor = policy.floor
    return Thresholds(same_event=same, floor=min(floor, same), source=source)


def pair_model_of(router: Router) -> PairModel | None:
    """The bundle's same-event pair model (duplicates.json), None to score by the blend."""
    record = router.bundle.duplicate_thresholds()
    if not record or "pair_model" not in record:
        return None
    try:
        return PairModel.from_dict(record["pair_model"])
    except (BundleError, KeyError, TypeError, ValueError) as exc:
        log.error("the pair model in duplicates.json of %s is unusable (%s); duplicates are "
                  "scored by the blended cosine", router.version, exc)
        return None
