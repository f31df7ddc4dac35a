"""Similarity index: exact repeats by text hash, near repeats by cosine, in time buckets.

With a `Lexical` model (the bundle's, model/lexical.py) the index keeps each complaint's
normalised text and serves the blended similarity: the nearest rows by embedding cosine are
re-scored with the char n-gram TF-IDF cosine and re-ranked. Without one it serves the embedding
cosine alone.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from model.errors import SimilarityIndexError
from model.index_segment import HNSW_EF_CONSTRUCTION, HNSW_M, MIN_HNSW_KEPT, Segment, utf8_array
from model.lexical import Lexical, blend
from model.pair_model import PairModel

__all__ = [
    "COMPACT_DEAD_FRACTION", "DEFAULT_BUCKET_SECONDS", "DEFAULT_EF_SEARCH", "DEFAULT_EXACT_BELOW",
    "HNSW_EF_CONSTRUCTION", "HNSW_M", "MIN_HNSW_KEPT", "Match", "SimilarityIndex",
    "rerank_candidates",
]

# Measured with `benchmarks/index_bench.py --compare` (2 busy cores, dim 384, one query): an
# exact scan takes ~0.1 ms at 4k rows and grows linearly (0.2 ms at 8k, 0.7 ms at 16k), while
# HNSW stays ~0.05 ms but reaches recall@10 0.99 only from ~4k rows (0.93 at 1-2k). Below this
# size exact search is as fast and exact; above it HNSW is faster at the same recall.
DEFAULT_EXACT_BELOW = 4096
# One segment per week: a 30-day window then touches ~5 segments, of which at most two are
# only partly inside it, and only those need a per-row time mask.
DEFAULT_BUCKET_SECONDS = 7 * 86400.0
DEFAULT_EF_SEARCH = 64
# Tombstones cost search time and memory; past this dead fraction a segment is rebuilt.
COMPACT_DEAD_FRACTION = 0.25
# With a lexical model, top-k is re-ranked from the 4k + 20 nearest by embedding. On real pairs
# (`benchmarks/index_bench.py --bundle`, full bundle, 1,406 texts, no window, k = 10), 2k + 10
# kept 95.5% of the exhaustive blended top 10, 4k + 20 97.3%, 8k + 40 98.2%; the same-event
# partner was found for 95.0%, 95.6% and 96.1% of queries (exhaustive: 96.1%). Each candidate
# not in the lexical cache costs ~0.1 ms: at 1M rows a 30-day query with 4k + 20 measured p99
# 15 ms (19 ms with a channel filter; 33 ms with no window at all).
def rerank_candidates(k: int) -> int:
    return 4 * k + 20


_FILE = "index.npz"
_FORMAT = 2  # 2: text hashes fold punctuation (model/normalize.py text_hash)


@dataclass(frozen=True)
class Match:
    """One hit: `exact` means the stored complaint has the same normalised-text hash."""

    id: str
    similarity: float
    exact: bool


class SimilarityIndex:
    """Embeddings of registered complaints: time and metadata filters, add/remove, persistence.

    Rows are sharded by time (one segment per `bucket_seconds`), so a time window only searches
    the segments it overlaps; a segment is scanned exactly below `exact_below` rows and through
    its own HNSW graph above. Filters (window edges, metadata, removed rows, excluded ids) are
    bitmaps handed to FAISS, so they cost no Python per candidate and never lose recall to
    post-filtering. Thread-safe: one lock, since FAISS graphs must not be searched while growing.
    """

    def __init__(
        self,
        dim: int,
        model_version: str,
        *,
        exact_below: int = DEFAULT_EXACT_BELOW,
        bucket_seconds: float = DEFAULT_BUCKET_SECONDS,
        ef_search: int = DEFAULT_EF_SEARCH,
        lexical: Lexical | None = None,
    ):
        if dim <= 0:
            raise SimilarityIndexError(f"dim must be positive, got {dim}: pass the encoder's size")
        if not model_version:
            raise SimilarityIndexError("model_version is empty: pass the bundle's model version")
        if exact_below < 1 or ef_search < 1 or not bucket_seconds > 0:
            raise SimilarityIndexError(
                "exact_below, ef_search and bucket_seconds must be positive, got "
                f"{exact_below}, {ef_search}, {bucket_seconds}"
            )
        self.dim = dim
        self.model_version = model_version
        self.exact_below = exact_below
        self.bucket_seconds = float(bucket_seconds)
        self.ef_search = ef_search
        self.lexical = lexical
        # The duplicate score of a candidate (model/pair_model.py) where the bundle has one,
        # else `blend` of the two cosines; it comes with the model, it is not saved.
        self.pair_model: PairModel | None = None
        self._segments: dict[int, Segment] = {}
        self._where: dict[str, tuple[int, int]] = {}  # id -> (segment key, row)
        self._by_hash: dict[str, set[str]] = {}
        self._vocab: dict[str, dict[str, int]] = {}  # metadata key -> value -> code
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, id_: object) -> bool:
        return id_ in self._where

    # -- writing ---------------------------------------------------------------------------
    def add(
        self,
        ids: Sequence[str],
        embeddings: np.ndarray,
        times: Sequence[float],
        text_hashes: Sequence[str],
        metadata: Sequence[Mapping[str, str]] | None = None,
        texts: Sequence[str] | None = None,
    ) -> None:
        """Add complaints; an id already present is replaced (that is how to update one).
        `texts` (normalised) are required when the index has a lexical model."""
        ids = [str(i) for i in ids]
        texts = self._texts(texts, len(ids), "add()")
        vectors = self._normalised(embeddings, "embeddings")
        times_arr = np.asarray(times, np.float64)
        metadata = list(metadata) if metadata is not None else [{}] * len(ids)
        lengths = {len(ids), len(vectors), len(times_arr), len(text_hashes), len(metadata)}
        if len(lengths) != 1:
            raise SimilarityIndexError(
                f"add() got {len(ids)} ids, {len(vectors)} embeddings, {len(times_arr)} times, "
                f"{len(text_hashes)} text_hashes, {len(metadata)} metadata: one of each per row"
            )
        if len(set(ids)) != len(ids):
            raise SimilarityIndexError("add() got the same id twice in one call: deduplicate first")
        if not np.isfinite(times_arr).all():
            raise SimilarityIndexError("times must be finite unix seconds")
        with self._lock:
            self._remove_locked([i for i in ids if i in self._where], compact=False)
            keys = np.floor(times_arr / self.bucket_seconds).astype(np.int64)
            for key in np.unique(keys):
                rows = np.flatnonzero(keys == key).tolist()
                seg = self._segments.setdefault(int(key), Segment(self.dim))
                n0 = len(seg.ids)
                codes = self._encode_meta([metadata[r] for r in rows])
                seg.append(
                    vectors[rows],
                    [ids[r] for r in rows],
                    [str(text_hashes[r]) for r in rows],
                    [texts[r] for r in rows] if texts else [],
                    times_arr[rows],
                    codes,
                    self.exact_below,
                )
                for j, r in enumerate(rows):
                    self._where[ids[r]] = (int(key), n0 + j)
                    self._by_hash.setdefault(str(text_hashes[r]), set()).add(ids[r])
            self._compact()

    def remove(self, ids: Sequence[str]) -> int:
        """Remove complaints by id; returns how many were present. Unknown ids are ignored."""
        with self._lock:
            return self._remove_locked([str(i) for i in ids], compact=True)

    def _remove_locked(self, ids: list[str], *, compact: bool) -> int:
        removed = 0
        for id_ in ids:
            loc = self._where.pop(id_, None)
            if loc is None:
                continue
            seg = self._segments[loc[0]]
            seg.alive[loc[1]] = False  # HNSW graphs cannot drop nodes: tombstone, then compact
            seg.n_dead += 1
            same = self._by_hash[seg.hashes[loc[1]]]
            same.discard(id_)
            if not same:
                del self._by_hash[seg.hashes[loc[1]]]
            removed += 1
        if compact:
            self._compact()
        return removed

    def _compact(self) -> None:
        for key, seg in list(self._segments.items()):
            if seg.n_dead <= COMPACT_DEAD_FRACTION * len(seg.ids):
                continue
            fresh = seg.compacted(self.exact_below)
            if fresh is None:
                del self._segments[key]
                continue
            self._segments[key] = fresh
            for row, id_ in enumerate(fresh.ids):
                self._where[id_] = (key, row)

    def _encode_meta(self, rows: list[Mapping[str, str]]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for i, m in enumerate(rows):
            for k, v in m.items():
                codes = out.setdefault(str(k), np.full(len(rows), -1, np.int32))
                vocab = self._vocab.setdefault(str(k), {})
                codes[i] = vocab.setdefault(str(v), len(vocab))
        return out

    # -- reading ---------------------------------------------------------------------------
    def search(
        self,
        embeddings: np.ndarray,
        text_hashes: Sequence[str] | None = None,
        *,
        k: int = 10,
        since: float | None = None,
        until: float | None = None,
        where: Mapping[str, str] | None = None,
        exclude_ids: Collection[str] | None = None,
        texts: Sequence[str] | None = None,
        times: Sequence[float] | None = None,
    ) -> list[list[Match]]:
        """Up to k matches per query row, most similar first; same-hash repeats lead with 1.0.

        `since`/`until` are inclusive unix-second bounds (None = unbounded); `where` keeps rows
        whose metadata equals every given value; `exclude_ids` are never returned. `texts` (the
        queries' normalised texts) are required when the index has a lexical model; `times`
        (the queries' unix seconds) when it also has a pair model.
        """
        queries = self._normalised(embeddings, "search embeddings")
        texts = self._texts(texts, len(queries), "search()")
        if text_hashes is not None and len(text_hashes) != len(queries):
            raise SimilarityIndexError(
                f"search() got {len(queries)} embeddings but {len(text_hashes)} text_hashes: "
                "pass one hash per query or None"
            )
        if k < 1:
            raise SimilarityIndexError(f"k must be at least 1, got {k}")
        if self.pair_model is not None and self.lexical is not None and (
                times is None or len(times) != len(queries)):
            raise SimilarityIndexError("search() needs one query time per row: this index "
                                       "scores pairs with the time between them")
        lo = -math.inf if since is None else float(since)
        hi = math.inf if until is None else float(until)
        if lo > hi:
            raise SimilarityIndexError(f"since ({since}) is after until ({until}): swap them")
        with self._lock:
            where_codes = {}
            for key, value in (where or {}).items():
                code = self._vocab.get(key, {}).get(value)
                if code is None:  # no row, live or removed, ever had this value
                    return [[] for _ in queries]
                where_codes[key] = code
            excluded = set(exclude_ids or ())
            # FAISS splits even a single query across OpenMP threads; on a busy 2-core machine
            # that measured 44 ms instead of 0.4 ms (flat scan, 12k rows): keep one on this thread.
            threads = faiss.omp_get_max_threads()
            if len(queries) == 1:
                faiss.omp_set_num_threads(1)
            wanted = k if self.lexical is None else rerank_candidates(k)
            try:
                sims, refs = self._ann(queries, wanted, lo, hi, where_codes, excluded)
            finally:
                faiss.omp_set_num_threads(threads)
            results = []
            for q in range(len(queries)):
                h = None if text_hashes is None else text_hashes[q]
                exact = self._exact_repeats(h, lo, hi, where_codes, excluded)
                out = [Match(i, 1.0, True) for i in exact[:k]]
                near = self._near(sims[q], refs[q], set(exact), texts[q] if texts else None, k,
                                  None if times is None else float(times[q]))
                results.append(out + near[:k - len(out)])
            return results

    def _near(self, sims: np.ndarray, refs: list[str | None], exact: set[str],
              text: str | None, k: int, at: float | None = None) -> list[Match]:
        """Non-exact candidates, most similar first: by embedding cosine, or re-scored by the
        pair model (else the blended similarity) when the index has a lexical model."""
        keep = [c for c in np.argsort(-sims, kind="stable")
                if refs[c] is not None and refs[c] not in exact]
        if self.lexical is not None:  # each segment gave its own nearest: keep the overall ones
            keep = keep[:rerank_candidates(k)]
        ids = [str(refs[c]) for c in keep]
        scores = np.minimum(sims[keep].astype(np.float64), 1.0)
        if self.lexical is not None and text is not None and ids:
            others = [self._text(i) for i in ids]
            if self.pair_model is not None and at is not None:
                days = [(self._time(i) - at) / 86400 for i in ids]
                scores = self.pair_model.score(scores, self.lexical, text, others, days)
            else:
                scores = blend(scores, self.lexical.cosines(text, others))
            order = np.argsort(-scores, kind="stable")
            ids, scores = [ids[i] for i in order], scores[order]
        return [Match(i, float(s), False) for i, s in zip(ids, scores, strict=True)]

    def _text(self, id_: str) -> str:
        key, row = self._where[id_]
        return self._segments[key].texts[row]

    def _time(self, id_: str) -> float:
        key, row = self._where[id_]
        return float(self._segments[key].times[row])

    def _texts(self, texts: Sequence[str] | None, n: int, what: str) -> list[str]:
        if self.lexical is None:
            return []  # nothing to compare them with: not kept
        if texts is None or len(texts) != n:
            raise SimilarityIndexError(
                f"{what} needs one normalised text per row ({n}), got "
                f"{'none' if texts is None else len(texts)}: this index re-scores by text")
        return [str(t) for t in texts]

    def _ann(self, queries, k, lo, hi, where_codes, excluded):
        """Top-k per overlapping segment, concatenated: (similarities, ids or None) per query."""
        nq = len(queries)
        sims, refs = [np.empty((nq, 0), np.float32)], [[] for _ in range(nq)]
        rows_by_seg: dict[int, list[int]] = {}
        for id_ in excluded:
            if id_ in self._where:
                key, row = self._where[id_]
                rows_by_seg.setdefault(key, []).append(row)
        lo_key = -math.inf if lo == -math.inf else math.floor(lo / self.bucket_seconds)
        hi_key = math.inf if hi == math.inf else math.floor(hi / self.bucket_seconds)
        for key in sorted(self._segments):
            if not lo_key <= key <= hi_key:
                continue
            found = self._segments[key].search(
                queries, k, lo, hi, where_codes, rows_by_seg.get(key),
                exact_below=self.exact_below, ef_search=self.ef_search)
            if found is None:
                continue
            sims.append(found[0])
            for q in range(nq):
                refs[q] += found[1][q]
        return np.hstack(sims), refs

    def _exact_repeats(self, text_hash, lo, hi, where_codes, excluded) -> list[str]:
        """Ids with the same text hash that pass the filters, most recent first."""
        hits = []
        for id_ in self._by_hash.get(text_hash, ()) if text_hash is not None else ():
            key, row = self._where[id_]
            seg = self._segments[key]
            t = seg.times[row]
            if id_ in excluded or not lo <= t <= hi:
                continue
            if all(m in seg.meta and seg.meta[m][row] == c for m, c in where_codes.items()):
                hits.append((-t, id_))
        return [id_ for _, id_ in sorted(hits)]

    def _normalised(self, embeddings: np.ndarray, what: str) -> np.ndarray:
        x = np.asarray(embeddings, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise SimilarityIndexError(
                f"{what} have shape {x.shape}, expected (n, {self.dim}): this index holds "
                f"{self.dim}-dim vectors of model {self.model_version!r} (one row: emb[None, :])"
            )
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        if not (np.isfinite(norms).all() and (norms > 0).all()):
            raise SimilarityIndexError(f"{what} contain a zero, NaN or infinite row: drop it")
        return np.ascontiguousarray(x / norms)

    # -- persistence -----------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        """Write `directory/index.npz` atomically (temp file, fsync, rename): never half a file."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with self._lock:
            keys = sorted(self._segments)
            arrays: dict[str, Any] = {}
            segments = []
            for n, key in enumerate(keys):
                segments.append({"key": key, **self._segments[key].to_arrays(f"s{n}", arrays)})
            header = {
                "format": _FORMAT,
                "dim": self.dim,
                "model_version": self.model_version,
                "exact_below": self.exact_below,
                "bucket_seconds": self.bucket_seconds,
                "ef_search": self.ef_search,
                "lexical": self.lexical is not None,
                "segments": segments,
                "vocab": {k: sorted(v, key=v.__getitem__) for k, v in self._vocab.items()},
            }
            arrays["header"] = utf8_array(json.dumps(header))
            tmp = directory / f".{_FILE}.{os.getpid()}.{threading.get_ident()}.tmp"
            try:
                with open(tmp, "wb") as f:
                    np.savez(f, **arrays)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, directory / _FILE)
                dir_fd = os.open(directory, os.O_RDONLY)  # make the rename itself durable
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
            finally:
                tmp.unlink(missing_ok=True)

    @classmethod
    def load(cls, directory: Path, *, model_version: str | None = None,
             lexical: Lexical | None = None) -> SimilarityIndex:
        """Read an index written by `save`; with `model_version`, refuse another model's index.
        An index saved with a lexical model must be loaded with one (the bundle's), and the
        other way round."""
        path = Path(directory) / _FILE
        if not path.is_file():
            raise SimilarityIndexError(
                f"no similarity index at {path}: build one (SimilarityIndex(...).add, .save)"
            )
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(z["header"].tobytes())
            if header.get("format") != _FORMAT:
                raise SimilarityIndexError(
                    f"{path} has format {header.get('format')}, this code reads {_FORMAT}: "
                    "rebuild it"
                )
            if model_version is not None and header["model_version"] != model_version:
                # Embeddings of different models never mix: the caller re-embeds and rebuilds.
                raise SimilarityIndexError(
                    f"{path} holds embeddings of model {header['model_version']!r}, not "
                    f"{model_version!r}: rebuild the index with the current model"
                )
            if bool(header.get("lexical")) != (lexical is not None):
                raise SimilarityIndexError(
                    f"{path} was saved {'with' if header.get('lexical') else 'without'} a lexical "
                    f"model and is loaded {'with' if lexical else 'without'} one: rebuild it"
                )
            index = cls(
                header["dim"],
                header["model_version"],
                exact_below=header["exact_below"],
                bucket_seconds=header["bucket_seconds"],
                ef_search=header["ef_search"],
                lexical=lexical,
            )
            vocab = header["vocab"].items()
            index._vocab = {k: {v: c for c, v in enumerate(vs)} for k, vs in vocab}
            for n, s in enumerate(header["segments"]):
                seg = Segment.from_arrays(index.dim, f"s{n}", z, s, with_texts=lexical is not None)
                index._segments[s["key"]] = seg
                for row in np.flatnonzero(seg.alive):
                    index._where[seg.ids[row]] = (s["key"], int(row))
                    index._by_hash.setdefault(seg.hashes[row], set()).add(seg.ids[row])
        return index
