"""Scale benchmark of model/index.py: insert rate, filtered top-10 latency, recall@10, memory.

Usage:
    python benchmarks/index_bench.py --sizes 100000 1000000 --output index_bench.json
    python benchmarks/index_bench.py --sizes 100000 --embeddings real.npy   # real seed vectors
    python benchmarks/index_bench.py --compare 20000   # FAISS vs hnswlib vs usearch, crossover
    python benchmarks/index_bench.py --sizes 1000000 --bundle bundles/B   # the served similarity

Real embeddings are not available yet, so by default the vectors are synthetic (see `synthetic`);
`--embeddings FILE.npy` replicates real ones with noise shaped like their own covariance. Each
size builds the index by bulk insert in time order, then times one `search` call per query (the
serving pattern) for several filter settings, and checks recall@10 against brute force over
exactly the rows the filter allows. `--compare` needs hnswlib and usearch (not project deps).

With `--bundle`, the index serves the bundle's blended similarity (model/lexical.py): the seeds
are the bundle's embeddings of the real Haikou complaints, and every row (and fresh query) keeps
the text of the complaint it replicates (its own string copy, as when stored); a near-repeat
query has the text of the row it repeats. The lexical cache is cleared before every query, so
each candidate's TF-IDF vector is computed: the cost of a window full of distinct texts.
Recall@10 is then against the exact blended top 10 (every allowed row scored), on the first
`--hybrid-truth` queries. It also measures, on the real labelled pairs alone, how much
re-ranking only the nearest by embedding loses (`rerank_recall`).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from model.index import SimilarityIndex  # noqa: E402
from model.lexical import blend  # noqa: E402

DAY = 86400.0
CHANNELS = ["12345-phone", "web", "app", "mini-program"]
CHANNEL_P = [0.5, 0.25, 0.15, 0.10]


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def synthetic(n: int, dim: int, seed: int, alpha: float = 0.5) -> np.ndarray:
    """Topics -> subtopics -> complaints, plus 10% re-submissions of earlier complaints.

    Noise has a decaying spectrum (variance of the i-th direction ~ i**-alpha) because real
    sentence embeddings have a low effective dimension, and a shared direction because they are
    anisotropic (all cosines positive-ish). Geometry is fixed; `seed` only draws the points.
    """
    geo, rng = np.random.default_rng(12345), np.random.default_rng(seed)
    rot = np.linalg.qr(geo.standard_normal((dim, dim)))[0].astype(np.float32)
    spec = (np.arange(1, dim + 1) ** (-alpha / 2)).astype(np.float32)
    spec *= np.sqrt(dim) / np.linalg.norm(spec)

    def noise(r, m, scale):
        z = r.standard_normal((m, dim), dtype=np.float32) * spec
        return z @ rot * (scale / np.sqrt(dim))

    shared = _unit(geo.standard_normal(dim))
    topics = _unit(geo.standard_normal((300, dim))) + 0.8 * shared
    subtopics = _unit(np.repeat(topics, 20, axis=0) + noise(geo, 6000, 0.6))
    out = np.empty((n, dim), np.float32)
    for i in range(0, n, 100_000):
        m = min(100_000, n - i)
        out[i : i + m] = _unit(subtopics[rng.integers(0, 6000, m)] + noise(rng, m, 0.8))
    repeat = np.flatnonzero(rng.random(n) < 0.1)[1:]
    earlier = (rng.random(len(repeat)) * repeat).astype(np.int64)
    out[repeat] = _unit(out[earlier] + noise(rng, len(repeat), 0.25))
    return out


def replicated(seed_vectors: np.ndarray, n: int, seed: int, scale: float = 0.3
               ) -> tuple[np.ndarray, np.ndarray]:
    """Real seed embeddings copied to n rows with noise following the seeds' own covariance;
    also which seed each row copies."""
    rng = np.random.default_rng(seed)
    s = _unit(np.asarray(seed_vectors, np.float32))
    eigval, eigvec = np.linalg.eigh(np.cov(s, rowvar=False).astype(np.float64))
    shape = (eigvec * np.sqrt(np.clip(eigval, 0, None))).T.astype(np.float32)
    out = np.empty((n, s.shape[1]), np.float32)
    which = rng.integers(0, len(s), n)
    for i in range(0, n, 100_000):
        m = min(100_000, n - i)
        z = rng.standard_normal((m, s.shape[1]), dtype=np.float32)
        out[i : i + m] = _unit(s[which[i : i + m]] + scale * z @ shape)
    return out, which


def effective_dim(x: np.ndarray) -> float:
    """Participation ratio of the covariance spectrum: how many directions carry the variance."""
    ev = np.linalg.eigvalsh(np.cov(x[:20_000], rowvar=False))
    return float(ev.sum() ** 2 / (ev**2).sum())


def available_mb() -> float:
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("MemAvailable"))


def rss_mb() -> float:
    """Resident memory now, after handing freed heap back to the OS so deltas are honest."""
    gc.collect()
    if platform.system() == "Linux":
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def brute_force_top10(x, q, allowed: np.ndarray, chunk: int = 50_000) -> np.ndarray:
    """Row numbers of the exact top 10 among allowed rows, per query."""
    rows = np.flatnonzero(allowed)
    best_s = np.full((len(q), 0), -np.inf, np.float32)
    best_i = np.empty((len(q), 0), np.int64)
    for i in range(0, len(rows), chunk):
        r = rows[i : i + chunk]
        s = q @ x[r].T
        best_s, best_i = np.hstack([best_s, s]), np.hstack([best_i, np.broadcast_to(r, s.shape)])
        top = np.argpartition(-best_s, min(10, best_s.shape[1] - 1), axis=1)[:, :10]
        best_s = np.take_along_axis(best_s, top, 1)
        best_i = np.take_along_axis(best_i, top, 1)
    return best_i


def recall_at_10(found: list[set[int]], truth: np.ndarray) -> float:
    hits = [len(f & set(t.tolist())) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits)) / 10


def brute_force_blend_top10(x, q, q_texts, row_seed, seed_texts, allowed, lexical
                            ) -> np.ndarray:
    """Row numbers of the exact top 10 by the blended similarity among allowed rows. Rows copy
    seed texts, so the lexical cosine is computed once per seed text and spread to its rows."""
    from model.lexical import dot

    seed_vectors = [lexical.vector(t) for t in seed_texts]
    rows = np.flatnonzero(allowed)
    out = []
    for v, text in zip(q, q_texts, strict=True):
        qv = lexical.vector(text)
        per_seed = np.array([dot(qv, sv) for sv in seed_vectors])
        scores = blend(x[rows] @ v, per_seed[row_seed[rows]])
        out.append(rows[np.argsort(-scores, kind="stable")[:10]])
    return np.array(out)


def rerank_recall(bundle: Path) -> dict:
    """Does re-ranking only the nearest by embedding lose what exhaustive blended search finds?
    On real complaints: every text of the labelled pairs (training/pairs.py) in one index, no
    time window (a harder pool than 30 days); each near-duplicate positive's later text queried.
    Texts and embeddings are paired as in serving, unlike the synthetic rows of `run_size`."""
    from model.normalize import normalize_text, text_hash
    from model.router import Router
    from training.pairs import build_pairs, default_sources

    router = Router.load(bundle, batch_size=1)
    pairs = build_pairs(*default_sources())
    texts = sorted({normalize_text(t) for p in pairs for t in (p.a_text, p.b_text)} - {""})
    x = _unit(router.embed(texts))
    index = SimilarityIndex(x.shape[1], router.version, lexical=router.lexical)
    index.add([str(i) for i in range(len(texts))], x, [0.0] * len(texts),
              [text_hash(t) for t in texts], texts=texts)
    at = {t: i for i, t in enumerate(texts)}
    queries = [(at[normalize_text(p.a_text)], at[normalize_text(p.b_text)]) for p in pairs
               if p.label == 1 and not p.exact and normalize_text(p.a_text) in at]
    hits = partner_served = partner_exhaustive = 0
    for qi, partner in queries:
        served = {int(m.id) for m in index.search(x[qi][None], texts=[texts[qi]], k=10,
                                                  exclude_ids={str(qi)})[0]}
        scores = blend(x @ x[qi], router.lexical.cosines(texts[qi], texts))
        scores[qi] = -np.inf
        exhaustive = set(np.argsort(-scores, kind="stable")[:10].tolist())
        hits += len(served & exhaustive)
        partner_served += partner in served
        partner_exhaustive += partner in exhaustive
    out = {"corpus": len(texts), "queries": len(queries),
           "recall@10_vs_exhaustive_blend": hits / (10 * len(queries)),
           "partner_in_served_top10": partner_served / len(queries),
           "partner_in_exhaustive_top10": partner_exhaustive / len(queries)}
    print(f"re-rank recall on real pairs: {json.dumps(out)}", flush=True)
    return out


def seed_texts_and_embeddings(bundle: Path) -> tuple[list[str], np.ndarray]:
    """The Haikou complaint texts (normalised, distinct) and their embeddings by the bundle."""
    from model.normalize import normalize_text
    from model.router import Router
    from training.datasets import read_rows
    from training.pairs import default_sources

    haikou, _ = default_sources()
    texts = sorted({t for path in sorted(haikou.glob("tickets-*.jsonl*"))
                    for row in read_rows(path) if (t := normalize_text(str(row["text"])))})
    t = time.perf_counter()
    vectors = Router.load(bundle, batch_size=1).embed(texts)
    print(f"embedded {len(texts):,} real complaint texts with {bundle} in "
          f"{time.perf_counter() - t:.0f}s", flush=True)
    return texts, vectors


def _copies(texts: list[str], which: np.ndarray) -> list[str]:
    return [(texts[j] + "#")[:-1] for j in which]  # each row its own string, as when stored


def run_size(n, args, seed_vectors, seed_texts=None) -> list[dict]:
    dim = args.dim
    t0 = time.perf_counter()
    x, which = (replicated(seed_vectors, n, 1) if seed_vectors is not None
                else (synthetic(n, dim, 1, args.alpha), None))
    rng = np.random.default_rng(2)
    span = args.days * DAY
    times = np.sort(rng.uniform(0, span, n))  # complaints arrive in time order
    channels = rng.choice(len(CHANNELS), n, p=CHANNEL_P)
    ids = [f"c{i}" for i in range(n)]
    meta = [{"channel": CHANNELS[c]} for c in channels]
    lexical = None
    pair_model = None
    texts: list[str] | None = None
    if args.bundle:
        from model.bundle import load_bundle

        bundle = load_bundle(args.bundle)
        lexical = bundle.lexical()
        if lexical is None:
            raise SystemExit(f"{args.bundle} has no lexical.json: it serves embeddings only")
        record = bundle.duplicate_thresholds() or {}
        if "pair_model" in record:  # served score: the pair model over the re-ranked candidates
            from model.pair_model import PairModel

            pair_model = PairModel.from_dict(record["pair_model"])
            print("scoring with the bundle's pair model; recall@10 is against the blend's exact "
                  "top 10 (the candidates it re-ranks)", flush=True)
        texts = _copies(seed_texts, which)
    gen_s = time.perf_counter() - t0
    print(f"\n[{n:,}] generated in {gen_s:.0f}s; effective dim {effective_dim(x):.0f}", flush=True)

    # Queries: half near-repeats of complaints inside the default window (the case the index
    # exists for), half fresh complaints from the same distribution.
    now = span
    in_window = np.flatnonzero(times >= now - args.window_days * DAY)
    nq = args.queries
    near_rows = rng.choice(in_window, nq // 2)
    near = x[near_rows]
    fresh, fresh_which = (replicated(seed_vectors, nq - nq // 2, 3) if seed_vectors is not None
                          else (synthetic(nq - nq // 2, dim, 3, args.alpha), None))
    q = np.vstack([_unit(near + 0.05 * rng.standard_normal(near.shape, dtype=np.float32)), fresh])
    hashes = [f"q{i}" for i in range(nq)]
    q_texts = None
    if texts is not None:
        q_texts = [texts[r] for r in near_rows] + _copies(seed_texts, fresh_which)

    rows = []
    for label, exact_below in (("hnsw+exact", None), ("exact only", 10**12)):
        if label == "exact only" and not args.exact_baseline:
            continue
        kw = {} if exact_below is None else {"exact_below": exact_below}
        rss0 = rss_mb()
        need = n * dim * 4 * 1.5 / 2**20 + 1024  # vectors, graph, ids, headroom
        if platform.system() == "Linux" and available_mb() < need:
            print(f"  {label}: SKIPPED, needs ~{need:,.0f} MB, {available_mb():,.0f} MB free")
            continue
        index = SimilarityIndex(dim, "bench", lexical=lexical, **kw)
        index.pair_model = pair_model
        at = None if pair_model is None else {"times": [now]}
        t = time.perf_counter()
        for i in range(0, n, args.batch):
            s = slice(i, i + args.batch)
            index.add(ids[s], x[s], times[s], ids[s], meta[s],
                      texts=None if texts is None else texts[s])
        insert_s = time.perf_counter() - t
        mem = rss_mb() - rss0
        print(f"  {label}: inserted {n:,} in {insert_s:.0f}s ({n / insert_s:,.0f}/s), "
              f"RSS +{mem:,.0f} MB", flush=True)
        settings = [
            ("30d window", {"since": now - args.window_days * DAY, "until": now}),
            ("30d + channel=web", {"since": now - args.window_days * DAY, "until": now,
                                   "where": {"channel": "web"}}),
            ("no window", {}),
        ]
        for name, kwargs in settings:
            allowed = np.ones(n, bool)
            if "since" in kwargs:
                allowed &= (times >= kwargs["since"]) & (times <= kwargs["until"])
            if "where" in kwargs:
                allowed &= channels == CHANNELS.index(kwargs["where"]["channel"])
            nqs = nq if name != "no window" else min(nq, 200)  # unfiltered truth is costly
            if lexical is None:
                truth = brute_force_top10(x, q[:nqs], allowed)
            else:
                n_truth = min(nqs, args.hybrid_truth)
                truth = brute_force_blend_top10(x, q[:n_truth], q_texts[:n_truth], which,
                                                seed_texts, allowed, lexical)
            index.search(q[:5], hashes[:5], k=10, texts=q_texts and q_texts[:5], **kwargs,
                         **({} if at is None else {"times": [now] * 5}))
            lat, found = [], []
            load0 = os.getloadavg()[0]
            for i in range(nqs):
                if lexical is not None:
                    lexical.vector.cache_clear()  # every candidate's vector computed: worst case
                    lexical.rare_trigrams.cache_clear()
                t = time.perf_counter()
                res = index.search(q[i : i + 1], hashes[i : i + 1], k=10,
                                   texts=q_texts and q_texts[i : i + 1], **kwargs,
                                   **(at or {}))[0]
                lat.append(time.perf_counter() - t)
                found.append({int(m.id[1:]) for m in res})
            recall = recall_at_10(found[:len(truth)], truth)
            lat_ms = np.array(lat) * 1e3
            row = {
                "size": n, "index": label, "query": name, "rows_in_filter": int(allowed.sum()),
                "queries": nqs, "p50_ms": float(np.percentile(lat_ms, 50)),
                "p99_ms": float(np.percentile(lat_ms, 99)), "max_ms": float(lat_ms.max()),
                "recall@10": float(recall), "insert_per_s": n / insert_s,
                "rss_delta_mb": mem, "load_avg": round((load0 + os.getloadavg()[0]) / 2, 1),
            }
            if lexical is not None:  # the embedding stage alone, against exact embedding search
                row["embedding_stage_recall@10"] = _embedding_stage_recall(
                    index, x, q[:n_truth], hashes[:n_truth], allowed, kwargs)
            rows.append(row)
            print(f"    {name:<18} p50 {row['p50_ms']:.2f} ms  p99 {row['p99_ms']:.2f} ms  "
                  f"recall@10 {recall:.3f}  (load {row['load_avg']})"
                  + (f"; embedding stage alone {row['embedding_stage_recall@10']:.3f}"
                     if lexical is not None else ""), flush=True)
        if label == "hnsw+exact":
            rows[-1].update(_streaming_and_persistence(index, x, now, args))
        del index
    return rows


def _embedding_stage_recall(index, x, q, hashes, allowed, kwargs) -> float:
    """Recall@10 of the index's ANN search with the re-ranking switched off."""
    lexical, index.lexical = index.lexical, None
    try:
        found = [{int(m.id[1:]) for m in index.search(q[i : i + 1], hashes[i : i + 1], k=10,
                                                      **kwargs)[0]} for i in range(len(q))]
    finally:
        index.lexical = lexical
    return recall_at_10(found, brute_force_top10(x, q, allowed))


def _streaming_and_persistence(index, x, now, args) -> dict:
    """Single-row adds and removes (the serving pattern) and a save/load round trip."""
    m = 1000
    t = time.perf_counter()
    for i in range(m):
        index.add([f"s{i}"], x[i : i + 1], [now + i], [f"s{i}"],
                  texts=None if index.lexical is None else ["新增投诉"])
    add_s = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(m):
        index.remove([f"s{i}"])
    remove_s = time.perf_counter() - t
    out = {"single_add_per_s": m / add_s, "single_remove_per_s": m / remove_s}
    if args.persist:
        with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
            t = time.perf_counter()
            index.save(Path(tmp))
            out["save_s"] = time.perf_counter() - t
            out["file_mb"] = (Path(tmp) / "index.npz").stat().st_size / 2**20
            t = time.perf_counter()
            SimilarityIndex.load(Path(tmp), model_version="bench", lexical=index.lexical)
            out["load_s"] = time.perf_counter() - t
    print("    streaming/persistence: " + ", ".join(f"{k} {v:,.1f}" for k, v in out.items()),
          flush=True)
    return out


def compare_libraries(n: int, dim: int, alpha: float) -> list[dict]:
    """One segment's worth of vectors through each ANN library, and the exact/HNSW crossover."""
    import faiss
    import hnswlib
    from usearch.index import Index as UsearchIndex

    x, q = synthetic(n, dim, 1, alpha), synthetic(300, dim, 2, alpha)
    half = np.zeros(n, bool)
    half[n // 4 : n // 4 + n // 2] = True  # a window covering half the segment
    truth, truth_half = brute_force_top10(x, q, np.ones(n, bool)), brute_force_top10(x, q, half)
    lo, hi = n // 4, n // 4 + n // 2

    def timed(search, truth_rows):
        lat, found = [], []
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)  # one query per call on one thread, as the index does
        for v in q:
            t = time.perf_counter()
            found.append(set(np.asarray(search(v[None])).ravel().tolist()))
            lat.append((time.perf_counter() - t) * 1e3)
        faiss.omp_set_num_threads(threads)
        rec = recall_at_10(found, truth_rows)
        return float(np.percentile(lat, 50)), float(np.percentile(lat, 99)), float(rec)

    rows = []

    def report(lib, build_rate, ef, filt, res):
        rows.append({"library": lib, "n": n, "build_per_s": build_rate, "ef": ef,
                     "filter": filt, "p50_ms": res[0], "p99_ms": res[1], "recall@10": res[2]})
        print(f"  {lib:<32} build {build_rate:>7,.0f}/s ef {ef:<4} {filt:<22} p50 {res[0]:.3f} "
              f"p99 {res[1]:.3f} ms recall {res[2]:.3f}", flush=True)

    print(f"\nlibrary comparison, n={n:,}, dim {dim}, 300 single-query calls each")
    for m_, efc in ((32, 40), (16, 64)):
        ix = faiss.IndexHNSWFlat(dim, m_, faiss.METRIC_INNER_PRODUCT)
        ix.hnsw.efConstruction = efc
        t = time.perf_counter()
        ix.add(x)
        rate = n / (time.perf_counter() - t)
        sel = faiss.IDSelectorRange(lo, hi)
        for ef in (32, 64, 128):
            p = faiss.SearchParametersHNSW(efSearch=ef)
            report(f"faiss HNSWFlat M={m_} efC={efc}", rate, ef, "none",
                   timed(lambda v, p=p, ix=ix: ix.search(v, 10, params=p)[1], truth))
            p = faiss.SearchParametersHNSW(efSearch=ef * 2, sel=sel)
            report(f"faiss HNSWFlat M={m_} efC={efc}", rate, ef * 2, "50% (C++ selector)",
                   timed(lambda v, p=p, ix=ix: ix.search(v, 10, params=p)[1], truth_half))
    h = hnswlib.Index("ip", dim)
    h.init_index(n, M=16, ef_construction=100)
    h.set_num_threads(os.cpu_count() or 1)
    t = time.perf_counter()
    h.add_items(x, np.arange(n))
    rate = n / (time.perf_counter() - t)
    h.set_num_threads(1)
    for ef in (32, 64, 128):
        h.set_ef(ef)
        report("hnswlib M=16 efC=100", rate, ef, "none",
               timed(lambda v: h.knn_query(v, 10)[0], truth))
    h.set_ef(128)
    report("hnswlib M=16 efC=100", rate, 128, "50% (Python callback)",
           timed(lambda v: h.knn_query(v, 10, filter=lambda i: lo <= i < hi)[0], truth_half))
    for dtype in ("f32", "f16", "i8"):
        u = UsearchIndex(ndim=dim, metric="ip", dtype=dtype, connectivity=16, expansion_add=128)
        t = time.perf_counter()
        u.add(np.arange(n), x)
        rate = n / (time.perf_counter() - t)
        for ef in (32, 64, 128):
            u.expansion_search = ef
            report(f"usearch {dtype} conn=16 efA=128", rate, ef, "none (no filter API)",
                   timed(lambda v, u=u: u.search(v, 10, threads=1).keys, truth))

    print(f"\nfiltered: exact (FAISS flat + selector) vs HNSW (M=32) on {n:,} rows, p50 ms")
    hn = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
    hn.add(x)
    flat = faiss.downcast_index(hn.storage)
    for kept in (0.5, 0.25, 0.1):
        mask = np.random.default_rng(4).random(n) < kept
        sub = brute_force_top10(x, q, mask)
        sel = faiss.IDSelectorBitmap(np.packbits(mask, bitorder="little"))
        p = faiss.SearchParameters(sel=sel)
        e = timed(lambda v, p=p: flat.search(v, 10, params=p)[1], sub)
        line = f"  {kept:.0%} kept: exact {e[0]:.3f} ms"
        row = {"filter_kept": kept, "exact_p50_ms": e[0]}
        for ef in (64, 128, 256):
            p = faiss.SearchParametersHNSW(sel=sel, efSearch=ef)
            a = timed(lambda v, p=p: hn.search(v, 10, params=p)[1], sub)
            line += f" | hnsw ef {ef} {a[0]:.3f} ms recall {a[2]:.3f}"
            row[f"hnsw_ef{ef}_p50_ms"], row[f"hnsw_ef{ef}_recall@10"] = a[0], a[2]
        rows.append(row)
        print(line, flush=True)

    print("\nexact (FAISS flat, one query) vs HNSW (M=32, ef 64), p50 ms")
    for size in (1000, 2000, 4000, 8000, 16000):
        if size > n:
            break
        flat = faiss.IndexFlatIP(dim)
        flat.add(x[:size])
        hn = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        hn.add(x[:size])
        sub = brute_force_top10(x[:size], q, np.ones(size, bool))
        e = timed(lambda v, f=flat: f.search(v, 10)[1], sub)
        a = timed(lambda v, f=hn: f.search(v, 10)[1], sub)
        rows.append({"crossover_n": size, "exact_p50_ms": e[0], "hnsw_p50_ms": a[0],
                     "hnsw_recall@10": a[2]})
        print(f"  n={size:>6,}: exact {e[0]:.3f} ms   hnsw {a[0]:.3f} ms (recall {a[2]:.3f})")
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="*", help="default 100000, or none with --compare")
    p.add_argument("--embeddings", type=Path, help=".npy of real embeddings to replicate")
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--days", type=float, default=365.0, help="time span the data covers")
    p.add_argument("--window-days", type=float, default=30.0)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--batch", type=int, default=10_000, help="rows per bulk add() call")
    p.add_argument("--alpha", type=float, default=0.5, help="synthetic noise spectrum decay")
    p.add_argument("--no-exact-baseline", dest="exact_baseline", action="store_false")
    p.add_argument("--no-persist", dest="persist", action="store_false")
    p.add_argument("--tmp", default=None, help="directory for the save/load round trip")
    p.add_argument("--compare", type=int, metavar="N", help="compare ANN libraries at N rows")
    p.add_argument("--output", type=Path, help="write all measurements here as JSON")
    p.add_argument("--bundle", type=Path, help="serve this bundle's blended similarity, with "
                   "real complaint texts per row")
    p.add_argument("--hybrid-truth", type=int, default=200, help="with --bundle: queries whose "
                   "recall is checked against the exact blended top 10")
    args = p.parse_args()
    if args.sizes is None:
        args.sizes = [] if args.compare else [100_000]

    seed_vectors = np.load(args.embeddings) if args.embeddings else None
    seed_texts = None
    if args.bundle and args.sizes:
        seed_texts, seed_vectors = seed_texts_and_embeddings(args.bundle)
    if seed_vectors is not None:
        args.dim = seed_vectors.shape[1]
    origin = args.embeddings or f"{args.bundle} over the Haikou complaints, each row with its text"
    source = (f"real embeddings from {origin} ({len(seed_vectors):,} rows) replicated "
              "with covariance-shaped noise" if seed_vectors is not None else
              f"SYNTHETIC vectors (clustered mixture, noise spectrum alpha={args.alpha}, 10% "
              "near-duplicate re-submissions): not real embeddings")
    print(f"data: {source}\nmachine: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f} at start")
    print(f"queries: {args.queries} single-query search() calls, k=10, a text hash that matches "
          f"nothing; half near-repeats of rows in the window, half fresh; data spread over "
          f"{args.days:.0f} days, window = last {args.window_days:.0f} days; recall@10 against "
          "brute force over the rows the filter allows" + (
              f"; served similarity of {args.bundle}, lexical cache cleared before each query"
              if args.bundle else ""))
    report = {"data": source, "cpus": os.cpu_count(), "args": {k: str(v) for k, v in
                                                               vars(args).items()}}
    if args.compare:
        report["compare"] = compare_libraries(args.compare, args.dim, args.alpha)
    if args.bundle:
        report["rerank_recall"] = rerank_recall(args.bundle)
    results = []
    for n in args.sizes:
        results += run_size(n, args, seed_vectors, seed_texts)
    report["results"] = results
    if results:
        print("\n| size | index | query | rows in filter | p50 ms | p99 ms | recall@10 | "
              "insert/s | RSS MB |\n|---|---|---|---|---|---|---|---|---|")
        for r in results:
            print(f"| {r['size']:,} | {r['index']} | {r['query']} | {r['rows_in_filter']:,} | "
                  f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['recall@10']:.3f} | "
                  f"{r['insert_per_s']:,.0f} | {r['rss_delta_mb']:,.0f} |")
    if args.output:
        args.output.write_text(json.dumps(report, indent=2))
        print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()
