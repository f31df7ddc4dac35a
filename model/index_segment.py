"""One time bucket of the similarity index (model/index.py): its rows, its filters as bitmaps,
its exact or HNSW search, and its arrays in the saved file."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import faiss
import numpy as np

# FAISS's own defaults; they built fastest among the settings with recall@10 >= 0.99 here.
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 40
MIN_HNSW_KEPT = 0.25  # smallest fraction of a segment a filter may keep for HNSW (see search)


class Segment:
    """The rows of one time bucket; their vectors live only in `index` (flat, or HNSW once big)."""

    def __init__(self, dim: int):
        self.index: Any = faiss.IndexFlatIP(dim)  # IndexFlatIP, later IndexHNSWFlat
        self.ids: list[str] = []
        self.hashes: list[str] = []
        self.texts: list[str] = []  # normalised texts, for the lexical similarity (or empty)
        self.times = np.empty(0, np.float64)
        self.alive = np.empty(0, bool)
        self.meta: dict[str, np.ndarray] = {}  # key -> int32 value codes, -1 = key absent
        self.n_dead = 0

    @property
    def is_hnsw(self) -> bool:
        return isinstance(self.index, faiss.IndexHNSW)

    def flat(self) -> faiss.Index:
        # Exact search of an HNSW segment goes to its storage: same vectors, no second copy.
        return faiss.downcast_index(self.index.storage) if self.is_hnsw else self.index

    def append(self, vectors, ids, hashes, texts, times, meta: dict[str, np.ndarray],
               exact_below) -> None:
        n0 = len(self.ids)
        if not self.is_hnsw and n0 + len(ids) >= exact_below:
            old = self.index.reconstruct_n(0, n0) if n0 else np.empty((0, vectors.shape[1]))
            self.index = faiss.IndexHNSWFlat(vectors.shape[1], HNSW_M, faiss.METRIC_INNER_PRODUCT)
            self.index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            vectors = np.vstack([old, vectors]).astype(np.float32)
        self.index.add(vectors)
        self.ids += ids
        self.hashes += hashes
        self.texts += texts
        self.times = np.concatenate([self.times, times])
        self.alive = np.concatenate([self.alive, np.ones(len(ids), bool)])
        for key in self.meta.keys() | meta.keys():
            old_codes = self.meta.get(key, np.full(n0, -1, np.int32))
            new_codes = meta.get(key, np.full(len(ids), -1, np.int32))
            self.meta[key] = np.concatenate([old_codes, new_codes])

    def compacted(self, exact_below: int) -> Segment | None:
        """A new segment of the live rows only (HNSW graphs cannot drop nodes); None if none."""
        keep = np.flatnonzero(self.alive)
        if not keep.size:
            return None
        fresh = Segment(self.index.d)
        vectors = self.index.reconstruct_n(0, len(self.ids))[keep]
        fresh.append(
            vectors,
            [self.ids[r] for r in keep],
            [self.hashes[r] for r in keep],
            [self.texts[r] for r in keep] if self.texts else [],
            self.times[keep],
            {k: v[keep] for k, v in self.meta.items()},
            exact_below,
        )
        return fresh

    def rows_selected(self, since, until, where_codes, exclude_rows) -> np.ndarray | None:
        """Boolean mask of searchable rows, or None when every row qualifies (the fast path)."""
        mask = self.alive.copy() if self.n_dead else None
        if self.times.min() < since or self.times.max() > until:  # window cuts this segment
            inside = (self.times >= since) & (self.times <= until)
            mask = inside if mask is None else mask & inside
        for key, code in where_codes.items():
            match = self.meta[key] == code if key in self.meta else np.zeros(len(self.ids), bool)
            mask = match if mask is None else mask & match
        if exclude_rows:
            mask = np.ones(len(self.ids), bool) if mask is None else mask
            mask[exclude_rows] = False
        return mask

    def search(self, queries: np.ndarray, k: int, since: float, until: float,
               where_codes: Mapping[str, int], exclude_rows: list[int] | None, *,
               exact_below: int, ef_search: int
               ) -> tuple[np.ndarray, list[list[str | None]]] | None:
        """Top-k of the rows that pass the filters: (similarities, ids or None) per query; None
        when no row passes."""
        mask = self.rows_selected(since, until, where_codes, exclude_rows)
        n_sel = len(self.ids) if mask is None else int(mask.sum())
        if n_sel == 0:
            return None
        # Keep `sel` referenced until the search returns: FAISS holds only a raw pointer.
        bits = None if mask is None else np.packbits(mask, bitorder="little")
        # (faiss's type stubs know only the C signatures of what its wrappers take as arrays)
        sel = None if bits is None else faiss.IDSelectorBitmap(bits)  # type: ignore[call-arg, arg-type]
        filt = {} if sel is None else {"sel": sel}
        # HNSW under a filter still walks the whole graph: at >= 25% of rows kept it stays
        # faster than exact with recall@10 >= 0.995 (19k rows, ef 64), at 10% recall fell to
        # 0.73 (0.93 even at ef 256) while exact costs only the kept rows, so exact it is.
        kept = n_sel / len(self.ids)
        if self.is_hnsw and n_sel >= exact_below and kept >= MIN_HNSW_KEPT:
            ef = int(max(ef_search, k) / math.sqrt(kept))  # a margin for thinner heaps
            params = faiss.SearchParametersHNSW(efSearch=ef, **filt)  # type: ignore[attr-defined]
            D, rows = self.index.search(queries, k, params=params)
        else:
            params = faiss.SearchParameters(**filt) if filt else None
            D, rows = self.flat().search(queries, k, params=params)
        return D, [[self.ids[r] if r >= 0 else None for r in rows[q]] for q in range(len(queries))]

    # -- in the saved file (model/index.py: save, load) ------------------------------------
    def to_arrays(self, prefix: str, arrays: dict[str, Any]) -> dict[str, Any]:
        """Put this segment's arrays into `arrays` under `prefix`; returns its header entry."""
        meta_keys = sorted(self.meta)
        arrays[f"{prefix}_faiss"] = faiss.serialize_index(self.index)
        arrays[f"{prefix}_times"] = self.times
        arrays[f"{prefix}_alive"] = self.alive
        if self.texts:
            arrays[f"{prefix}_texts"] = utf8_array(json.dumps(self.texts, ensure_ascii=False))
        for m, mk in enumerate(meta_keys):
            arrays[f"{prefix}_meta{m}"] = self.meta[mk]
        return {"ids": self.ids, "hashes": self.hashes, "meta_keys": meta_keys}

    @classmethod
    def from_arrays(cls, dim: int, prefix: str, arrays: Mapping[str, Any],
                    header: Mapping[str, Any], *, with_texts: bool) -> Segment:
        """The segment that `to_arrays` wrote (`arrays`: the opened .npz file)."""
        seg = cls(dim)
        seg.index = faiss.deserialize_index(arrays[f"{prefix}_faiss"])
        seg.ids, seg.hashes = header["ids"], header["hashes"]
        if with_texts:
            seg.texts = json.loads(arrays[f"{prefix}_texts"].tobytes())
        seg.times, seg.alive = arrays[f"{prefix}_times"], arrays[f"{prefix}_alive"]
        seg.meta = {mk: arrays[f"{prefix}_meta{m}"] for m, mk in enumerate(header["meta_keys"])}
        seg.n_dead = int((~seg.alive).sum())
        return seg


def utf8_array(text: str) -> np.ndarray:
    """Text as a uint8 array: .npz files hold arrays, and are read without pickle."""
    return np.frombuffer(text.encode("utf-8"), np.uint8)
