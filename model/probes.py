"""A bundle's probes: real dev texts and what the bundle answered for them when it was written
(labels, confidences and embeddings).

Before a bundle serves — at server start, on a hot swap (`POST /v1/admin/model`) and on
`huying models promote|rollback` — it routes its probes again and must agree with its own record.
A model.onnx damaged after export (bytes flipped, hashes rewritten) answers garbage or NaN with
valid-looking shapes; this is where it is refused, before it can dispatch anything.

Each probe is routed alone, at record and at check time, so the answer does not depend on
batch-mates (dynamic int8 scales activations per batch).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from model.errors import BundleError
from model.normalize import normalize_text

if TYPE_CHECKING:
    from model.router import Router

PROBES = "probes.json"
N_PROBES = 32
# Per head: the share of probes whose label must match the record, and the largest mean
# |confidence difference| allowed. Generous for the same model on another CPU or onnxruntime
# build; a damaged model misses both by far.
MIN_AGREEMENT = 0.9
MAX_MEAN_CONFIDENCE_DIFF = 0.05
# The embedding serves duplicate search: each probe's must keep this cosine with its record.
MIN_EMBEDDING_COSINE = 0.98


def record(router: Router, texts: Sequence[str]) -> dict[str, Any]:
    """The probes file for `router`: each text with the label and confidence of every head."""
    if not texts:
        raise BundleError("no probe texts: a bundle needs real texts to check itself with")
    answers = _answers(router, texts)
    bad = [t for t, a in zip(texts, answers, strict=True)
           if any(not math.isfinite(c) for _, c in a.values())]
    if bad:
        raise BundleError(f"the model gives non-finite confidences for {len(bad)} of "
                          f"{len(texts)} dev texts, e.g. {bad[0][:40]!r}; it cannot be bundled")
    return {"texts": list(texts),
            "answers": [{h: {"label": lab, "confidence": c} for h, (lab, c) in a.items()}
                        for a in answers],
            "embeddings": [[round(float(x), 5) for x in e] for e in _embeddings(router, texts)]}


def check(router: Router, probes: dict[str, Any] | None) -> dict[str, dict[str, float]]:
    """Route the probes again; BundleError unless every head, and the embedding, agrees with the
    record. Returns per head the label agreement and mean confidence difference it measured,
    and the lowest embedding cosine."""
    where = f"bundle {router.bundle.path}"
    if probes is None:
        raise BundleError(f"{where} has no {PROBES} (it was written before bundles recorded "
                          "their own predictions), so it cannot be checked before serving; "
                          "retrain it with `huying train`")
    try:
        texts = [str(t) for t in probes["texts"]]
        recorded = [{h: (str(v["label"]), float(v["confidence"])) for h, v in a.items()}
                    for a in probes["answers"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{where}: {PROBES} is malformed ({exc})") from exc
    if not texts or len(texts) != len(recorded):
        raise BundleError(f"{where}: {PROBES} has {len(texts)} texts and {len(recorded)} answers")
    answers = _answers(router, texts)
    measured: dict[str, dict[str, float]] = {}
    problems = []
    for head in router.bundle.heads:
        pairs = [(a[head], r[head]) for a, r in zip(answers, recorded, strict=True) if head in r]
        if not pairs:
            problems.append(f"{head}: no recorded answers")
            continue
        agreement = sum(a[0] == r[0] for a, r in pairs) / len(pairs)
        diffs = [abs(a[1] - r[1]) for a, r in pairs]
        diff = sum(diffs) / len(diffs) if all(math.isfinite(d) for d in diffs) else math.inf
        measured[head] = {"agreement": round(agreement, 4), "mean_confidence_diff": diff}
        if agreement < MIN_AGREEMENT or not diff <= MAX_MEAN_CONFIDENCE_DIFF:
            problems.append(f"{head}: {agreement:.0%} of labels as recorded (need "
                            f"{MIN_AGREEMENT:.0%}), mean confidence difference {diff:.3g} "
                            f"(limit {MAX_MEAN_CONFIDENCE_DIFF})")
    recorded_embeddings = probes.get("embeddings")
    if recorded_embeddings is not None:
        now = _embeddings(router, texts)
        then = np.asarray(recorded_embeddings, dtype=np.float32)
        if then.shape != now.shape:
            problems.append(f"embeddings of shape {now.shape}, recorded {then.shape}")
        else:
            cosine = (now * then).sum(1) / np.maximum(
                np.linalg.norm(now, axis=1) * np.linalg.norm(then, axis=1), 1e-12)
            lowest = float(np.nan_to_num(cosine, nan=-1.0).min())
            measured["embedding"] = {"min_cosine": round(lowest, 4)}
            if lowest < MIN_EMBEDDING_COSINE:
                problems.append(f"embedding cosine with the record as low as {lowest:.3f} "
                                f"(need {MIN_EMBEDDING_COSINE})")
    if problems:
        raise BundleError(f"{where} does not answer its {len(texts)} probe complaints as it did "
                          f"when it was written ({'; '.join(problems)}): model.onnx is damaged "
                          "or does not belong to this bundle; it was not activated")
    return measured


def check_bundle(path: str | Path) -> dict[str, dict[str, float]]:
    """Load the bundle at `path` and `check` it (the CLI's promote and rollback)."""
    from model.router import Router  # model/router.py imports this module's neighbours

    router = Router.load(path, threads=1)
    return check(router, router.bundle.probes())


def _embeddings(router: Router, texts: Sequence[str]) -> np.ndarray:
    return np.vstack([router.infer([normalize_text(t)])[1] for t in texts])


def _answers(router: Router, texts: Sequence[str]) -> list[dict[str, tuple[str, float]]]:
    out = []
    for text in texts:  # one at a time: independent of batch-mates
        [routing] = router.route([text], check_finite=False)
        out.append({h: (p.label, float(p.confidence)) for h, p in routing.heads.items()})
    return out
