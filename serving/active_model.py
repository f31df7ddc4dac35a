"""One active model across replicas: each follows the bundles directory's ACTIVE pointer.

A promotion or rollback — through any replica's `POST /v1/admin/model {"version"}` or the CLI
(`huying models promote | rollback`) — rewrites `HUYING_BUNDLES_DIR/ACTIVE` (atomically, with
HISTORY). Every replica reads it each HUYING_MODEL_FOLLOW_INTERVAL_S (2 s) and, when it names
another version than the last one it saw, swaps that bundle in the usual way (loaded and checked
against its probes while the old model serves; serving/model_slot.py). Replicas share the bundles
directory anyway, since each loads the bundle files, so the pointer lives beside them: one truth,
not a copy in the database to keep in step. Edge-triggered, so a swap by `path` or HUYING_BUNDLE
on one replica is not undone. A bundle that fails to load is logged and not retried until
ACTIVE changes again; the replica keeps serving the old model and /readyz says it is behind.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from model import versions
from model.errors import HuyingError
from serving.model_slot import ModelSlot

log = logging.getLogger("huying.serving")


@dataclass
class ActiveFollower:
    slot: ModelSlot
    bundles_dir: Path
    interval_s: float
    seen: str | None = None  # the ACTIVE version last acted on
    error: str | None = None  # why the last one could not be swapped in

    async def start(self) -> None:
        self.seen = await asyncio.to_thread(versions.active_version, self.bundles_dir)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.check()
            except Exception:  # an unreadable pointer now is no reason to stop following
                log.exception("reading %s/ACTIVE failed", self.bundles_dir)

    async def check(self) -> bool:
        """Swap in the version ACTIVE names if it changed since last seen; True if swapped."""
        version = await asyncio.to_thread(versions.active_version, self.bundles_dir)
        if version is None or version == self.seen:
            return False
        self.seen = version
        current = self.slot.router.version if self.slot.router is not None else None
        if version == current:  # this replica made the change
            self.error = None
            return False
        try:
            result = await self.slot.swap(versions.bundle_path(self.bundles_dir, version))
        except HuyingError as exc:
            self.error = f"{version}: {exc}"
            log.error("the active model is now %s, but it cannot be served here: %s", version,
                      exc)
            return False
        self.error = None
        log.info("following ACTIVE: serving model %s (was %s, loaded in %.1f s)", result.version,
                 result.previous_version, result.seconds)
        return True
