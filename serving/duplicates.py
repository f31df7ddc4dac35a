"""Duplicates: which registered complaints a new one repeats, and the registry that keeps them.

`DuplicateService` holds the similarity index (model/index.py) of the registered complaints for
the model version being served, and answers the DuplicateFinder hook of /v1/route. The store is
the source of truth; the index is a cache of it, kept on disk in `HUYING_INDEX_DIR/<version>/`:

- **Start**: load `index.npz` of the served version and reconcile it with the store (complaints
  registered since the last save are embedded and added); if it is missing, of another version,
  or holds complaints the store has removed, rebuild it: every registered complaint re-embedded
  with the current router. The app starts serving once this is done.
- **Hot swap**: embeddings of different models never mix. A new version gets a new index, built
  in the background from the store while the old index keeps answering (queries are embedded
  with the old router meanwhile); writes made during the build are journaled and replayed onto
  the new index, which is then swapped in. A failed build is logged and retried.
- **Replicas**: every replica on one store follows the others. Each `follow_interval_s` (0.5 s)
  it reads the audit log past the last entry it saw (the log is written in the same transaction
  as the change, so it is the store's ordered change log) and indexes the complaints registered
  elsewhere and drops the removed ones. An id it finds missing below the newest may belong to a
  transaction still open: it is read again until GAP_TTL_S have passed.
- **Persistence**: after changes the index is saved at most every `HUYING_INDEX_SAVE_INTERVAL_S`
  (10 s) by a background thread (atomic write), and on shutdown. A crash loses at most those
  seconds of index, never data: the next start re-adds them from the store.

A duplicate is `{id, similarity, same_event, exact}`: `exact` when the normalised texts have the
same hash (similarity 1.0), `same_event` when exact or the similarity reaches the calibrated
threshold, else it is only similar; nothing below the floor is returned. The similarity is the
bundle's: the blend of embedding and char n-gram TF-IDF cosines (model/lexical.py), or the
embedding cosine for a bundle without `lexical.json`. Threshold and floor come
from HUYING_DUPLICATE_THRESHOLD / HUYING_DUPLICATE_FLOOR if set (an operator's override), else
from the bundle's `duplicates.json` (calibrated on real pairs by `huying train`), else the
defaults in serving/duplicate_policy.py. The window is the `HUYING_DUPLICATE_WINDOW_DAYS` (30)
days up to the complaint's `received_at` (or now).

Beside this module: serving/duplicate_policy.py (the policy and the thresholds in force),
serving/duplicate_records.py (Query and Entry, what the index is searched with and filled with)
and serving/duplicate_search.py (the search of one index). The registry behind /v1/complaints,
which stores complaints and feeds this index, is serving/complaints.py.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from model.errors import NotFound, SimilarityIndexError
from model.index import SimilarityIndex
from model.normalize import normalize_text, text_hash
from model.router import Router, Routing
from serving.duplicate_policy import (
    DEFAULT_FLOOR,
    DEFAULT_SAME_EVENT,
    DuplicatePolicy,
    Thresholds,
    pair_model_of,
    thresholds_for,
)
from serving.duplicate_records import METADATA_KEYS, Entry, Query, entry_of, query_of
from serving.duplicate_search import search_index
from serving.model_slot import SMOKE_TEXT
from serving.schemas import ComplaintIn, DuplicatePublic
from serving.store import service as store
from serving.store.tables import Complaint

__all__ = [
    "DEFAULT_FLOOR", "DEFAULT_SAME_EVENT", "EMBED_BATCH", "METADATA_KEYS", "DuplicatePolicy",
    "DuplicateService", "Entry", "Query", "Thresholds", "entry_of", "query_of",
]

log = logging.getLogger("huying.serving")

EMBED_BATCH = 64
GAP_TTL_S = 30.0  # how long a missing audit-log id is awaited (an open transaction may fill it)
_REPLAY_UNDER_LOCK = 16  # journal entries left to replay while holding the lock at the swap


class DuplicateService:
    """The similarity index of the served model version: search, add, remove, build, persist."""

    def __init__(self, sessions: sessionmaker[Session], index_root: Path,
                 policy: DuplicatePolicy | None = None, *, save_interval_s: float = 10.0,
                 follow_interval_s: float = 0.5):
        self.sessions = sessions
        self.follow_interval_s = follow_interval_s
        self._seen = 0  # the newest audit-log id applied (see follow)
        self._gaps: dict[int, float] = {}  # audit-log ids missing below it → when first missed
        self.index_root = Path(index_root)
        self.policy = policy or DuplicatePolicy()
        self.save_interval_s = save_interval_s
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._index: SimilarityIndex | None = None
        self._router: Router | None = None  # the router whose embeddings fill `_index`
        self._target: Router | None = None  # the router being served: the index must follow
        self._thresholds: Thresholds | None = None
        self._journal: list[tuple[str, Any]] | None = None  # writes during a build
        self._dirty = False
        self._needs_rebuild = False
        self._build_error: tuple[str, str] | None = None  # (version, message)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_build: dict[str, Any] = {}
        self._save_error: str | None = None  # why the last save failed (a full disk); retried

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._maintain, name="huying-duplicates",
                                            daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the background thread (a build in progress is abandoned) and save if changed."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None
        self.save()

    def use_router(self, router: Router) -> None:
        """The served router changed: from now on the index must hold its embeddings."""
        with self._lock:
            self._target = router
            if self._index is not None and self._index.model_version == router.version:
                self._router = router  # same version, another object: embeddings still match
        self._wake.set()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the index of the served version is active (False: timeout or failure)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while not self.ready:
                target = self._target
                if target is not None and self._build_error is not None \
                        and self._build_error[0] == target.version:
                    return False
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._changed.wait(left)
            return True

    @property
    def ready(self) -> bool:
        index, target = self._index, self._target
        return index is not None and target is not None \
            and index.model_version == target.version and not self._needs_rebuild

    def status(self) -> dict[str, Any]:
        with self._lock:
            index, target = self._index, self._target
            return {"model_version": None if index is None else index.model_version,
                    "serving_version": None if target is None else target.version,
                    "size": 0 if index is None else len(index), "ready": self.ready,
                    "thresholds": None if self._thresholds is None else vars(self._thresholds),
                    "error": None if self._build_error is None else self._build_error[1],
                    "last_build": self.last_build.get("how"), "save_error": self._save_error}

    def __contains__(self, complaint_id: object) -> bool:
        index = self._index
        return index is not None and complaint_id in index

    def __len__(self) -> int:
        index = self._index
        return 0 if index is None else len(index)

    def thresholds(self) -> Thresholds:
        with self._lock:
            if self._thresholds is None:
                self._thresholds = self._load_thresholds(
                    self._router if self._index is not None else None)
            return self._thresholds

    # -- searching -------------------------------------------------------------------------------
    def find(self, complaints: Sequence[ComplaintIn], routings: Sequence[Routing], *,
             within_batch: bool = False) -> list[list[DuplicatePublic]]:
        """The DuplicateFinder hook: duplicates per routed complaint, in order.

        With `within_batch`, a complaint also matches the ones before it in the same request (a
        registration batch, where those are registered together with it).
        """
        queries = [query_of(c, r) for c, r in zip(complaints, routings, strict=True)]
        return self.search(queries, within_batch=within_batch)

    def search(self, queries: Sequence[Query], policy: DuplicatePolicy | None = None, *,
               within_batch: bool = False, both_ways: bool = False
               ) -> list[list[DuplicatePublic]]:
        """Duplicates per query, received in the window before it (`both_ways`: or after)."""
        policy = policy or self.policy
        with self._lock:
            index, router = self._index, self._router
            limits = self.thresholds()
        if index is None or router is None:
            return [[] for _ in queries]
        return search_index(index, router, queries, policy, limits, within_batch=within_batch,
                            both_ways=both_ways)

    def similar(self, text: str, *, limit: int) -> list[dict[str, Any]]:
        """The review page's hook (serving/review.py SimilarCaseFinder): registered complaints
        like `text` in the window up to now, with their texts."""
        query = Query(id=None, text=text, text_hash=text_hash(text), embedding=None,
                      model_version=None, time=datetime.now(UTC))
        [found] = self.search([query], replace(self.policy, top_k=limit, match=()))
        texts: dict[str, str] = {}
        with self.sessions() as session:
            for d in found:
                try:
                    texts[d.id] = store.get_complaint(session, d.id).text
                except NotFound:  # removed since the search
                    continue
        return [{"id": d.id, "similarity": d.similarity, "kind": "exact" if d.exact else "near",
                 "text": texts[d.id]} for d in found if d.id in texts]

    # -- writing ---------------------------------------------------------------------------------
    def add(self, entries: Sequence[Entry]) -> None:
        """Index registered complaints (after their transaction committed). An index failure is
        logged and schedules a rebuild from the store; it never fails the caller."""
        entries = [e for e in entries if normalize_text(e.text)]
        if not entries:
            return
        try:
            for _ in range(3):  # the index may be swapped while we embed: then embed again
                with self._lock:
                    index, router = self._index, self._router
                    if self._journal is not None:
                        self._journal.append(("add", entries))
                        entries_journaled = True
                    else:
                        entries_journaled = False
                if index is None or router is None:
                    return  # the build in progress reads the store or replays the journal
                vectors = self._vectors(entries, index.model_version, router)
                with self._lock:
                    if self._index is not index:
                        if entries_journaled:
                            return  # the swap replayed them onto the new index
                        continue
                    _add_to(index, entries, vectors)
                    self._dirty = True
                    return
            raise SimilarityIndexError("the index kept changing while complaints were added")
        except Exception:
            log.exception("adding %d complaints to the similarity index failed; it will be "
                          "rebuilt from the store", len(entries))
            with self._lock:
                self._needs_rebuild = True
            self._wake.set()

    def remove(self, ids: Sequence[str]) -> None:
        try:
            with self._lock:
                if self._journal is not None:
                    self._journal.append(("remove", list(ids)))
                if self._index is not None:
                    self._index.remove(list(ids))
                    self._dirty = True
        except Exception:
            log.exception("removing %s from the similarity index failed; it will be rebuilt",
                          list(ids))
            with self._lock:
                self._needs_rebuild = True
            self._wake.set()

    def save(self) -> Path | None:
        """Write the index to index_root/<version>/ if it changed since the last save."""
        with self._lock:
            index = self._index
            if index is None or not self._dirty:
                return None
            self._dirty = False
        return self.index_root / index.model_version if self._save(index) else None

    def _save(self, index: SimilarityIndex) -> bool:
        """Write `index` to index_root/<version>/. A failure (a full disk, a read-only folder) is
        logged and reported in status(), and the index marked unsaved: it keeps serving from
        memory, the store still holds every complaint, and the save is retried."""
        directory = self.index_root / index.model_version
        try:
            index.save(directory)
        except Exception as exc:
            first = log.exception if self._save_error is None else log.warning  # once per outage
            first("saving the similarity index to %s failed (%s); it keeps serving from memory "
                  "and the save is retried", directory, exc)
            with self._lock:
                self._dirty = True
                self._save_error = f"{type(exc).__name__}: {exc}"
            return False
        with self._lock:
            if self._save_error is not None:
                log.info("the similarity index is saved to %s again", directory)
            self._save_error = None
        return True

    # -- building --------------------------------------------------------------------------------
    def follow(self) -> tuple[int, int]:
        """Apply what other replicas registered or removed since the last call (the audit log
        past `_seen`); (added, removed)."""
        with self._lock:
            if self._index is None:
                return 0, 0  # the build in progress reads the store
            after, gaps = self._seen, sorted(self._gaps)
        with self.sessions() as session:
            changes = store.complaint_changes(session, after, gaps)
            ids = [i for i in dict.fromkeys(changes.registered) if i not in self]
            rows = []
            for complaint_id in ids:
                try:
                    rows.append(store.get_complaint(session, complaint_id))
                except NotFound:  # removed again since
                    continue
        now = time.monotonic()
        read = set(changes.seen)
        with self._lock:
            for i in read:
                self._gaps.pop(i, None)
            newest = max(read, default=after)
            self._gaps.update({i: now for i in range(after + 1, newest) if i not in read})
            self._gaps = {i: t for i, t in self._gaps.items() if now - t < GAP_TTL_S}
            self._seen = max(self._seen, newest)
        entries = [entry_of(r) for r in rows if normalize_text(r.text)]
        if entries:
            self.add(entries)
        gone = [i for i in dict.fromkeys(changes.removed) if i in self]
        if gone:
            self.remove(gone)
        return len(entries), len(gone)

    def _maintain(self) -> None:
        last_save = last_follow = time.monotonic()
        tick = min(self.save_interval_s, self.follow_interval_s or self.save_interval_s)
        while not self._stop.is_set():
            self._wake.wait(timeout=tick)
            self._wake.clear()
            if self._stop.is_set():
                break
            with self._lock:
                target = self._target
                stale = target is not None and (
                    self._index is None or self._index.model_version != target.version
                    or self._needs_rebuild)
            if stale and target is not None:  # a failed build is retried on the next tick
                self.build(target)
            if self.follow_interval_s and time.monotonic() - last_follow >= self.follow_interval_s:
                try:
                    self.follow()
                except Exception:  # the store may be down: the next tick tries again
                    log.exception("following the other replicas' registrations failed")
                last_follow = time.monotonic()
            if time.monotonic() - last_save >= self.save_interval_s:
                self.save()
                last_save = time.monotonic()

    def build(self, router: Router) -> None:
        """Make the index of `router`'s version current: load and reconcile, or rebuild."""
        version = router.version
        started = time.perf_counter()
        with self._lock:
            self._journal = []  # open before reading the store: nothing falls in between
            force = self._needs_rebuild  # cleared at the swap: until then not ready
        try:
            with self.sessions() as session:
                seen = store.last_change(session)  # before the read: later changes are followed
                rows = [r for r in store.registered_complaints(session) if normalize_text(r.text)]
            index, how = (None, "rebuilt") if force else self._load_reconciled(router, rows)
            if index is None:
                index = SimilarityIndex(_dim(router), version, lexical=router.lexical)
                self._embed_into(index, router, [entry_of(r) for r in rows])
            index.pair_model = pair_model_of(router)
            # saved before it is swapped in, so "ready" means on disk too (later writes
            # debounce); a save that fails does not keep the replica from serving
            saved = self._save(index)
            self.last_build = {"model_version": version, "how": how, "size": len(index),
                               "seconds": round(time.perf_counter() - started, 3)}
            self._swap_in(index, router, saved=saved)
            with self._lock:
                self._seen, self._gaps = max(self._seen, seen), {}
        except _Cancelled:
            with self._lock:
                self._journal = None
            return
        except Exception as exc:
            log.exception("building the similarity index for model %s failed", version)
            with self._changed:
                self._journal = None
                self._build_error = (version, f"{type(exc).__name__}: {exc}")
                self._changed.notify_all()
            return
        log.info("similarity index for model %s %s: %d complaints in %.1f s", version, how,
                 len(index), self.last_build["seconds"])

    def _load_reconciled(self, router: Router, rows: Sequence[Complaint]
                         ) -> tuple[SimilarityIndex | None, str]:
        directory = self.index_root / router.version
        if not (directory / "index.npz").is_file():
            return None, "rebuilt (no saved index)"
        try:
            index = SimilarityIndex.load(directory, model_version=router.version,
                                         lexical=router.lexical)
        except Exception as exc:  # a cache: whatever is wrong with it (BadZipFile when truncated)
            log.warning("the saved similarity index in %s is unusable (%s); rebuilding",
                        directory, exc)
            return None, "rebuilt (saved index unusable)"
        missing = [r for r in rows if r.id not in index]
        if len(index) != len(rows) - len(missing):
            return None, "rebuilt (saved index holds removed complaints)"
        self._embed_into(index, router, [entry_of(r) for r in missing])
        return index, f"loaded from {directory} (+{len(missing)} from the store)"

    def _embed_into(self, index: SimilarityIndex, router: Router,
                    entries: Sequence[Entry]) -> None:
        for start in range(0, len(entries), EMBED_BATCH):
            if self._stop.is_set():
                raise _Cancelled
            chunk = entries[start:start + EMBED_BATCH]
            _add_to(index, chunk, self._vectors(chunk, index.model_version, router))

    def _swap_in(self, index: SimilarityIndex, router: Router, *, saved: bool) -> None:
        """Replay the writes made during the build, then make `index` the current one."""
        done = 0
        while True:
            with self._changed:
                journal = self._journal or []
                if len(journal) - done <= _REPLAY_UNDER_LOCK:
                    self._replay(index, router, journal[done:])
                    # the saved copy (if any) lacks the replayed writes
                    self._dirty = bool(journal) or not saved
                    self._index, self._router, self._journal = index, router, None
                    # writes that failed on the old index are in the store read or the journal
                    self._needs_rebuild = False
                    self._thresholds = self._load_thresholds(router)
                    self._build_error = None
                    self._changed.notify_all()
                    return
                pending = journal[done:]
            self._replay(index, router, pending)  # the long tail outside the lock
            done += len(pending)

    def _replay(self, index: SimilarityIndex, router: Router,
                journal: Sequence[tuple[str, Any]]) -> None:
        for op, payload in journal:
            if op == "add":
                _add_to(index, payload, self._vectors(payload, index.model_version, router))
            else:
                index.remove(payload)

    @staticmethod
    def _vectors(entries: Sequence[Entry], version: str, router: Router) -> np.ndarray:
        vectors: list[np.ndarray | None] = [
            e.embedding if e.embedding is not None and e.model_version == version else None
            for e in entries]
        redo = [i for i, v in enumerate(vectors) if v is None]
        if redo:
            for i, v in zip(redo, router.embed([entries[i].text for i in redo]), strict=True):
                vectors[i] = v
        return np.vstack([np.asarray(v, np.float32) for v in vectors])

    def _load_thresholds(self, router: Router | None) -> Thresholds:
        return thresholds_for(router, self.policy)


class _Cancelled(Exception):
    """The service is closing: a build stops between batches."""


def _add_to(index: SimilarityIndex, entries: Sequence[Entry], vectors: np.ndarray) -> None:
    if entries:
        index.add([e.id for e in entries], vectors, [e.time.timestamp() for e in entries],
                  [e.text_hash for e in entries], [dict(e.metadata) for e in entries],
                  texts=[normalize_text(e.text) for e in entries])


def _dim(router: Router) -> int:
    return int(router.embed([SMOKE_TEXT]).shape[1])

