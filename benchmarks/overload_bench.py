"""Overload benchmark: far more clients than the server can route, for a fixed time.

    .venv/bin/python benchmarks/overload_bench.py --bundle bundles/VERSION --clients 256 --seconds 60

Starts `python -m serving.main` (as benchmarks/load_bench.py does) and runs `--clients` clients
for `--seconds`, each sending one real Haikou complaint per request to /v1/route, back to back;
a refused client waits for the Retry-After it was given. Reports the accepted requests'
throughput and p50/p99 latency, the refusals (503 with and without Retry-After) and every other
error, and the server's deadline (HUYING_QUEUE_DEADLINE_MS) and mean batch time from /metrics,
so "p99 of accepted ≤ deadline + one batch" can be read off the output.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_bench import load_texts, start_server  # noqa: E402


async def overload(base: str, key: str, texts: list[str], clients: int,
                   seconds: float) -> dict[str, Any]:
    accepted: list[float] = []
    refused = {"retry_after": 0, "no_retry_after": 0}
    errors: list[str] = []
    stop = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=1)

    async def one_client(n: int) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits,
                                     headers={"Authorization": f"Bearer {key}"}) as client:
            i = n
            while time.monotonic() < stop:
                body = {"complaints": [{"id": str(i), "text": texts[i % len(texts)]}]}
                i += clients
                started = time.perf_counter()
                try:
                    r = await client.post("/v1/route", json=body)
                except httpx.HTTPError as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                if r.status_code == 200 and r.json()["routed"] == 1:
                    accepted.append(time.perf_counter() - started)
                elif r.status_code == 503 and r.json()["error"]["code"] == "overloaded":
                    retry = r.headers.get("retry-after")
                    refused["retry_after" if retry else "no_retry_after"] += 1
                    await asyncio.sleep(float(retry or 1))
                else:
                    errors.append(f"{r.status_code}: {r.text[:200]}")

    started = time.perf_counter()
    await asyncio.gather(*(one_client(n) for n in range(clients)))
    wall = time.perf_counter() - started
    ms = np.array(accepted) * 1000 if accepted else np.array([np.nan])
    return {"clients": clients, "seconds": round(wall, 1), "accepted": len(accepted),
            "accepted_per_s": round(len(accepted) / wall, 1),
            "accepted_p50_ms": round(float(np.percentile(ms, 50)), 1),
            "accepted_p99_ms": round(float(np.percentile(ms, 99)), 1),
            "accepted_max_ms": round(float(np.max(ms)), 1),
            "refused_503_with_retry_after": refused["retry_after"],
            "refused_503_without_retry_after": refused["no_retry_after"],
            "other_errors": len(errors), "error_samples": errors[:5]}


def _metric(text: str, name: str) -> float | None:
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else None


def _bucket_quantile(text: str, name: str, label: str, q: float) -> float | None:
    """The upper bound (ms) of the histogram bucket holding quantile q: what the server saw,
    without the driver's own delays (it shares the machine's cores)."""
    buckets = sorted((float(le), float(v)) for le, v in re.findall(
        rf'^{name}_bucket{{le="([^"]+)",{label}}} (\S+)$', text, re.M) if le != "+Inf")
    total = _metric(text, f"{name}_count{{{label}}}")
    if not buckets or not total:
        return None
    for le, count in buckets:
        if count >= q * total:
            return le * 1000
    return float("inf")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--clients", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--deadline-ms", type=float, default=None,
                        help="HUYING_QUEUE_DEADLINE_MS for the server (default: its own)")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    knobs = argparse.Namespace(threads=None, batch_workers=None, max_wait_ms=None, max_batch=None)
    texts = load_texts(2000)
    with tempfile.TemporaryDirectory() as tmp:
        import os

        if args.deadline_ms is not None:
            os.environ["HUYING_QUEUE_DEADLINE_MS"] = str(args.deadline_ms)
        os.environ["HUYING_DATABASE_URL"] = f"sqlite:///{tmp}/huying.db"
        os.environ["HUYING_INDEX_DIR"] = f"{tmp}/index"
        process, base, key, log = start_server(knobs, args.bundle, Path(tmp))
        try:
            result = asyncio.run(overload(base, key, texts, args.clients, args.seconds))
            metrics = httpx.get(f"{base}/metrics", timeout=10).text
        finally:
            process.terminate()
            process.wait(30)
    from serving.settings import Settings

    batches = _metric(metrics, "huying_batch_duration_seconds_count") or 0
    result["deadline_ms"] = Settings().queue_deadline_ms
    result["mean_batch_ms"] = round(
        1000 * (_metric(metrics, "huying_batch_duration_seconds_sum") or 0) / batches, 1) \
        if batches else None
    waits = _metric(metrics, "huying_queue_wait_seconds_count") or 0
    result["server_mean_queue_wait_ms"] = round(
        1000 * (_metric(metrics, "huying_queue_wait_seconds_sum") or 0) / waits, 1) \
        if waits else None
    handled = _metric(metrics, 'huying_http_request_duration_seconds_count{route="/v1/route"}')
    result["server_mean_route_request_ms"] = round(1000 * (_metric(
        metrics, 'huying_http_request_duration_seconds_sum{route="/v1/route"}') or 0) / handled,
        1) if handled else None
    result["server_route_p99_ms_at_most"] = _bucket_quantile(
        metrics, "huying_http_request_duration_seconds", 'route="/v1/route"', 0.99)
    print(json.dumps(result, ensure_ascii=False, indent=2))
    if args.output:
        args.output.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
