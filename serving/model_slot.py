"""The router being served, and the hot swap that replaces it without downtime.

A swap loads the new bundle in a worker thread, routes the bundle's probe complaints with it and
compares the answers with those it recorded when it was written (model/probes.py), and only then
replaces the reference. Batches capture the reference when they start, so requests in
flight finish on the old router; it is freed when the last of them ends. A bundle that fails to
load, or answers its probes otherwise than recorded, is refused with the reason, and the old
router keeps serving.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from model import probes
from model.errors import BundleError, Conflict, HuyingError
from model.router import Router
from serving.errors import ModelNotReady

SMOKE_TEXT = "市民来电反映：小区门口路灯不亮，晚上出行不便，请相关部门尽快维修。"

RouterLoader = Callable[[Path], Router]


@dataclass(frozen=True)
class SwapResult:
    version: str
    previous_version: str | None
    path: Path
    seconds: float


class ModelSlot:
    """Holds the current Router; `swap` replaces it atomically after loading and checking."""

    def __init__(self, loader: RouterLoader):
        self._loader = loader
        self._router: Router | None = None
        self._lock = asyncio.Lock()
        self.load_error: str | None = "the model has not been loaded yet"
        self.on_change: Callable[[Router], None] | None = None

    @property
    def router(self) -> Router | None:
        return self._router

    def current(self) -> Router:
        """The router to use now; ModelNotReady says why there is none."""
        router = self._router
        if router is None:
            raise ModelNotReady(f"no model is loaded: {self.load_error}")
        return router

    async def swap(self, path: Path) -> SwapResult:
        """Load, smoke-test and install the bundle at `path`; BundleError leaves the old one."""
        if self._lock.locked():
            raise Conflict("another model swap is in progress; retry when it has finished")
        async with self._lock:
            started = time.perf_counter()
            router = await asyncio.to_thread(self._load_checked, Path(path))
            previous = self._router
            self._router = router  # one reference assignment: atomic for every reader
            self.load_error = None
            if self.on_change is not None:
                self.on_change(router)
            return SwapResult(version=router.version,
                              previous_version=None if previous is None else previous.version,
                              path=Path(path), seconds=round(time.perf_counter() - started, 3))

    def _load_checked(self, path: Path) -> Router:
        try:
            router = self._loader(path)
        except HuyingError:
            raise
        except Exception as exc:  # onnxruntime/tokenizers errors: report them as a bad bundle
            raise BundleError(f"bundle {path} could not be loaded: {type(exc).__name__}: {exc}; "
                              "re-export it or choose another version") from exc
        try:
            probes.check(router, router.bundle.probes())
        except HuyingError:
            raise
        except Exception as exc:
            raise BundleError(f"bundle {path} loaded but failed to route its probe complaints "
                              f"({type(exc).__name__}: {exc}); it was not activated") from exc
        return router
