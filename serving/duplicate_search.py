"""Duplicates of complaints in one similarity index: each query embedded in the index's model,
searched in its window, joined by the earlier complaints of its request, and thresholded."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from model.index import SimilarityIndex
from model.lexical import blend
from model.normalize import normalize_text
from model.router import Router
from serving.duplicate_policy import DuplicatePolicy, Thresholds
from serving.duplicate_records import Query
from serving.schemas import DuplicatePublic


def search_index(index: SimilarityIndex, router: Router, queries: Sequence[Query],
                 policy: DuplicatePolicy, limits: Thresholds, *, within_batch: bool = False,
                 both_ways: bool = False) -> list[list[DuplicatePublic]]:
    """Duplicates per query in `index` (filled with `router`'s embeddings), received in the
    window before it (`both_ways`: or after); `within_batch`: also the queries before it."""
    threshold = limits.same_event if policy.threshold is None else policy.threshold
    floor = min(threshold, limits.floor if policy.floor is None else policy.floor)
    out: list[list[DuplicatePublic]] = [[] for _ in queries]
    texts = [normalize_text(query.text) for query in queries]  # once: the loops reuse them
    vectors = _embeddings(queries, texts, index.model_version, router)
    for q, query in enumerate(queries):
        vector = vectors[q]
        if vector is None:
            continue
        where = {k: query.metadata[k] for k in policy.match if query.metadata.get(k)}
        at, window = query.time.timestamp(), policy.window.total_seconds()
        matches = index.search(vector[None, :], [query.text_hash], k=policy.top_k,
                               since=at - window, until=at + window if both_ways else at,
                               where=where or None,
                               exclude_ids={query.id} if query.id else None,
                               texts=[texts[q]], times=[at])[0]
        found = [(m.id, m.similarity, m.exact) for m in matches]
        if within_batch:
            found += _earlier_in_batch(queries, texts, vectors, q, policy, where, index)
        found.sort(key=lambda f: (not f[2], -f[1]))
        seen: set[str] = set()
        for id_, similarity, exact in found:
            if id_ in seen or not (exact or similarity >= floor):
                continue
            seen.add(id_)
            out[q].append(DuplicatePublic(id=id_, similarity=round(float(similarity), 4),
                                          same_event=exact or similarity >= threshold,
                                          exact=exact))
        out[q] = out[q][:policy.top_k]
    return out


def _embeddings(queries: Sequence[Query], texts: Sequence[str], version: str,
                router: Router) -> list[np.ndarray | None]:
    """Each query's embedding in the index's model: its own if of that version, else
    re-embedded with the index's router (during a rebuild); None for an empty text."""
    out: list[np.ndarray | None] = [None] * len(queries)
    redo = []
    for i, query in enumerate(queries):
        if not texts[i]:
            continue  # nothing the citizen wrote is left: it repeats nothing
        if query.embedding is not None and query.model_version == version:
            out[i] = _unit(query.embedding)
        else:
            redo.append(i)
    if redo:
        vectors = router.embed([queries[i].text for i in redo])
        for i, vector in zip(redo, vectors, strict=True):
            out[i] = _unit(vector)
    return out


def _earlier_in_batch(queries: Sequence[Query], texts: Sequence[str],
                      vectors: list[np.ndarray | None], q: int, policy: DuplicatePolicy,
                      where: Mapping[str, str], index: SimilarityIndex
                      ) -> list[tuple[str, float, bool]]:
    """Matches of query q among the queries before it in the same request, scored as the
    index scores (model/index.py); `texts` are the queries' normalised texts."""
    query, vector = queries[q], vectors[q]
    found = []
    for j in range(q):
        other, other_vector = queries[j], vectors[j]
        if other.id is None or other_vector is None or vector is None \
                or abs(other.time - query.time) > policy.window \
                or any(other.metadata.get(k) != v for k, v in where.items()):
            continue
        exact = other.text_hash == query.text_hash
        similarity = min(float(np.dot(vector, other_vector)), 1.0)
        if index.lexical is not None:
            if index.pair_model is not None:
                days = (other.time - query.time).total_seconds() / 86400
                similarity = float(index.pair_model.score([similarity], index.lexical, texts[q],
                                                          [texts[j]], [days])[0])
            else:
                similarity = blend(similarity, index.lexical.cosine(texts[q], texts[j]))
        found.append((other.id, 1.0 if exact else similarity, exact))
    return found


def _unit(vector: np.ndarray) -> np.ndarray:
    v = np.asarray(vector, np.float32)
    return v / max(float(np.linalg.norm(v)), 1e-12)
