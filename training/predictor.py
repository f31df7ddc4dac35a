"""The one interface every model is judged through, and `load_predictor` to open one from disk."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from model.errors import BundleError

BASELINE_KIND = "tfidf-baseline"
BASELINE_META = "meta.json"
ROUTER_MARKERS = ("bundle.json", "model.onnx")


@runtime_checkable
class Predictor(Protocol):
    """What evaluation needs from a model: its label spaces and probabilities per head.

    `spaces` maps each head it predicts (among category, subcategory, department) to that head's
    label space; `predict_proba` takes texts already normalised by `model.normalize.normalize_text`
    and returns, per head, an n × len(spaces[head]) matrix whose rows sum to 1.
    """

    # Read-only properties, so a plain attribute of any mapping type satisfies them.
    @property
    def name(self) -> str: ...

    @property
    def spaces(self) -> Mapping[str, tuple[str, ...]]: ...

    def predict_proba(self, texts: Sequence[str]) -> dict[str, np.ndarray]: ...


def is_baseline_dir(path: Path) -> bool:
    meta = path / BASELINE_META
    if not meta.is_file():
        return False
    try:
        return json.loads(meta.read_text(encoding="utf-8")).get("kind") == BASELINE_KIND
    except (OSError, ValueError, AttributeError):
        return False


def load_predictor(path: str | Path) -> Predictor:
    """Open a saved model by what its directory holds: a TF-IDF baseline or a router bundle."""
    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"model directory {path} does not exist; pass a directory written by "
                          "`huying baseline --out DIR` or a router bundle")
    if is_baseline_dir(path):
        from training.baseline import TfidfBaseline

        return TfidfBaseline.load(path)
    if any((path / marker).exists() for marker in ROUTER_MARKERS):
        try:
            # Imported here: the router module is optional while the baseline works without it.
            from model.router import Router
        except ImportError as exc:
            raise BundleError(f"{path} looks like a router bundle, but the router cannot be "
                              f"imported ({exc}); install the project with its serve "
                              "dependencies (`pip install -e .`)") from exc
        return Router.load(path)
    raise BundleError(f"{path} is neither a baseline ({BASELINE_META} with kind "
                      f"{BASELINE_KIND!r}) nor a router bundle (one of "
                      f"{', '.join(ROUTER_MARKERS)}); pass the directory a training run wrote")
