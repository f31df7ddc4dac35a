"""Load benchmark: the served API over real HTTP against offline batch routing of the same bundle.

    .venv/bin/python benchmarks/load_bench.py --bundle bundles/haikou12345-v1 --output bench.json
    .venv/bin/python benchmarks/load_bench.py --bundle /tmp/tiny-v1 --requests 100   # smoke run

Starts `python -m serving.main` in a subprocess on a free port (its own keys file, access log
off), then drives it from this process with httpx asyncio clients at 1, 8 and 32 concurrent
clients; every request is one real complaint from data/haikou12345. Per level: throughput,
p50/p95/p99 latency, errors, the mean micro-batch size (from /metrics), and the CPU milliseconds
the server and this driver spent per request: unlike wall-clock numbers, those hold on a machine
busy with other work (the served/offline ratio is only meaningful on a quiet one). Offline is
`Router.route` on batches of 32 in this process, measured right before and right after the load
levels with the ORT default thread count and with one thread; the best of them is the baseline
(the conservative choice). Prints a table; `--output` writes the numbers as JSON.

Target (issue 4): at 32 clients, served throughput ≥ 70% of offline, with zero errors.
Server knobs: --threads (onnxruntime intra-op threads, 0 = all cores), --batch-workers,
--max-wait-ms, --max-batch; they are passed as HUYING_* variables.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import gzip
import json
import os
import random
import re
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from model.router import Router  # noqa: E402
from model.versions import active_bundle_path  # noqa: E402
from serving.auth import create_key  # noqa: E402

DATA = REPO / "data" / "haikou12345" / "tickets-2018-02-to-04.jsonl.gz"


def load_texts(limit: int, seed: int = 0) -> list[str]:
    texts: list[str] = []
    with gzip.open(DATA, "rt", encoding="utf-8") as f:
        for line in f:
            text = json.loads(line).get("text")
            if text:
                texts.append(text)
    random.Random(seed).shuffle(texts)
    return texts[:limit]


def offline_throughput(bundle: Path, texts: list[str], threads: int,
                       batch: int = 32) -> tuple[float, float]:
    """(complaints/s, CPU ms per complaint) of Router.route on batches of `batch`, in process."""
    router = Router.load(bundle, threads=threads or None, batch_size=batch)
    router.route(texts[:batch])  # warm-up: first runs allocate
    cpu, started = _own_cpu(), time.perf_counter()
    for i in range(0, len(texts), batch):
        router.route(texts[i:i + batch])
    rate = len(texts) / (time.perf_counter() - started)
    cpu_ms = (_own_cpu() - cpu) * 1000 / len(texts)
    del router
    gc.collect()
    return round(rate, 1), round(cpu_ms, 2)


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _process_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by process `pid` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args: argparse.Namespace, bundle: Path, workdir: Path) -> tuple[subprocess.Popen,
                                                                                  str, str, Path]:
    keys_file = workdir / "api_keys.json"
    key = create_key(keys_file, "intake", name="load benchmark")
    port = free_port()
    env = {**os.environ,
           "HUYING_BUNDLE": str(bundle), "HUYING_PORT": str(port), "HUYING_HOST": "127.0.0.1",
           "HUYING_API_KEYS_FILE": str(keys_file),
           "HUYING_DEMO_KEYS_FILE": str(workdir / "demo-keys.txt"),
           "HUYING_ACCESS_LOG": "false", "HUYING_LOG_LEVEL": "warning"}
    # Knobs left out keep the server's defaults (serving/settings.py): what `huying serve` runs.
    knobs = {"HUYING_THREADS": args.threads, "HUYING_BATCH_WORKERS": args.batch_workers,
             "HUYING_BATCH_MAX_WAIT_MS": args.max_wait_ms, "HUYING_BATCH_MAX_SIZE": args.max_batch}
    env.update({name: str(value) for name, value in knobs.items() if value is not None})
    log = workdir / "server.log"
    with open(log, "w") as out:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen([sys.executable, "-m", "serving.main"], cwd=REPO, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return process, base, key, log
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit(f"the server was not ready after 120 s:\n{log.read_text()}")


async def drive(base: str, key: str, texts: list[str], clients: int, requests: int,
                server_pid: int) -> dict[str, Any]:
    """`requests` POST /v1/route calls of one complaint each, `clients` at a time."""
    latencies: list[float] = []
    errors: list[str] = []
    next_index = 0
    headers = {"Authorization": f"Bearer {key}"}

    # One AsyncClient (one keep-alive connection) per simulated client, as separate intake
    # systems would be: one shared pool of 32 connections costs the driver ~3x more CPU.
    def new_client() -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=base, headers=headers, timeout=60,
                                 limits=httpx.Limits(max_connections=1))

    async def one_client(client: httpx.AsyncClient) -> None:
        nonlocal next_index
        while next_index < requests:
            i = next_index
            next_index += 1
            body = {"complaints": [{"id": str(i), "text": texts[i % len(texts)]}]}
            started = time.perf_counter()
            try:
                r = await client.post("/v1/route", json=body)
                if r.status_code != 200 or r.json()["routed"] != 1:
                    errors.append(f"{r.status_code}: {r.text[:200]}")
            except httpx.HTTPError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
            latencies.append(time.perf_counter() - started)

    pool = [new_client() for _ in range(clients)]
    try:
        # Warm-up: connections opened, first batches run; not measured.
        await asyncio.gather(*(c.post("/v1/route", json={"complaints": [
            {"id": "w", "text": texts[0]}]}) for c in pool))
        before = await _batch_stats(pool[0])
        cpu = (_process_cpu(server_pid), _own_cpu())
        started = time.perf_counter()
        await asyncio.gather(*(one_client(c) for c in pool))
        seconds = time.perf_counter() - started
        server_cpu, client_cpu = _process_cpu(server_pid) - cpu[0], _own_cpu() - cpu[1]
        after = await _batch_stats(pool[0])
    finally:
        await asyncio.gather(*(c.aclose() for c in pool))

    ms = np.array(latencies) * 1000
    batches = after[0] - before[0]
    return {"clients": clients, "requests": requests, "errors": len(errors),
            "error_samples": errors[:5], "seconds": round(seconds, 3),
            "throughput": round(requests / seconds, 1),
            "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p95_ms": round(float(np.percentile(ms, 95)), 1),
            "p99_ms": round(float(np.percentile(ms, 99)), 1),
            "mean_batch": round((after[1] - before[1]) / batches, 1) if batches else None,
            # CPU per request, robust to other load on the machine (wall-clock numbers are not).
            "server_cpu_ms": round(server_cpu * 1000 / requests, 2),
            "client_cpu_ms": round(client_cpu * 1000 / requests, 2)}


async def _batch_stats(client: httpx.AsyncClient) -> tuple[float, float]:
    text = (await client.get("/metrics")).text
    count = re.search(r"^huying_batch_size_count (\S+)$", text, re.M)
    total = re.search(r"^huying_batch_size_sum (\S+)$", text, re.M)
    return (float(count.group(1)) if count else 0.0, float(total.group(1)) if total else 0.0)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=None,
                        help="bundle directory (default: the one named in bundles/ACTIVE)")
    parser.add_argument("--requests", type=int, default=640, help="requests per load level")
    parser.add_argument("--single-requests", type=int, default=100,
                        help="requests at 1 client (sequential, so fewer)")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--offline-texts", type=int, default=640)
    parser.add_argument("--threads", type=int, default=None,
                        help="server onnxruntime threads (default: the server's default)")
    parser.add_argument("--batch-workers", type=int, default=None)
    parser.add_argument("--max-wait-ms", type=float, default=None)
    parser.add_argument("--max-batch", type=int, default=None)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)

    bundle = args.bundle or active_bundle_path(REPO / "bundles")
    levels = [int(c) for c in args.concurrency.split(",")]
    texts = load_texts(max(args.requests, args.offline_texts) + 64)
    load_before = os.getloadavg()

    offline = {"before": {t: offline_throughput(bundle, texts[:args.offline_texts], t)
                          for t in (0, 1)}}
    served = []
    with tempfile.TemporaryDirectory(prefix="huying-bench-") as tmp:
        process, base, key, log = start_server(args, bundle, Path(tmp))
        try:
            for clients in levels:
                n = args.single_requests if clients == 1 else args.requests
                served.append(asyncio.run(drive(base, key, texts, clients, n, process.pid)))
                print(f"  {clients:>3} clients: {served[-1]['throughput']:.1f} complaints/s",
                      flush=True)
        finally:
            process.terminate()
            process.wait(timeout=30)
    offline["after"] = {t: offline_throughput(bundle, texts[:args.offline_texts], t)
                        for t in (0, 1)}
    best_offline = max(rate for phase in offline.values() for rate, _ in phase.values())
    offline_cpu = min(cpu for phase in offline.values() for _, cpu in phase.values())
    at_max = next((s for s in served if s["clients"] == max(levels)), None)
    ratio = round(at_max["throughput"] / best_offline, 3) if at_max else None

    result = {
        "bundle": str(bundle),
        "version": json.loads((bundle / "bundle.json").read_text())["version"],
        "machine": {"cpus": os.cpu_count(), "load_avg_before": [round(x, 2) for x in load_before],
                    "load_avg_after": [round(x, 2) for x in os.getloadavg()]},
        "server": _server_settings(args),
        "offline": {"complaints_per_s_and_cpu_ms": {p: {str(t): v for t, v in x.items()}
                                                    for p, x in offline.items()},
                    "best": best_offline, "cpu_ms_per_complaint": offline_cpu},
        "served": served, "ratio_served_to_offline": ratio,
        "target_met": bool(ratio is not None and ratio >= 0.7 and at_max["errors"] == 0),
    }
    print_table(result)
    if args.output:
        args.output.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return result


def _server_settings(args: argparse.Namespace) -> dict[str, Any]:
    from serving.settings import Settings, batch_workers

    defaults = Settings()
    return {"threads": _or(args.threads, defaults.threads),
            "batch_workers": _or(args.batch_workers, batch_workers(defaults)),
            "max_wait_ms": _or(args.max_wait_ms, defaults.batch_max_wait_ms),
            "max_batch": _or(args.max_batch, defaults.batch_max_size)}


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def print_table(r: dict[str, Any]) -> None:
    s = r["server"]
    print(f"\nbundle {r['version']} ({r['bundle']}); {r['machine']['cpus']} CPUs, load average "
          f"{r['machine']['load_avg_before'][0]} → {r['machine']['load_avg_after'][0]}")
    print(f"server: threads={s['threads']} batch_workers={s['batch_workers']} "
          f"max_wait_ms={s['max_wait_ms']} max_batch={s['max_batch']}\n")
    print("| clients | requests | errors | complaints/s | p50 ms | p95 ms | p99 ms | mean batch "
          "| server CPU ms/req | client CPU ms/req |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for x in r["served"]:
        print(f"| {x['clients']} | {x['requests']} | {x['errors']} | {x['throughput']:.1f} | "
              f"{x['p50_ms']:.1f} | {x['p95_ms']:.1f} | {x['p99_ms']:.1f} | {x['mean_batch']} | "
              f"{x['server_cpu_ms']} | {x['client_cpu_ms']} |")
    off = r["offline"]["complaints_per_s_and_cpu_ms"]
    print(f"\noffline Router.route, batches of 32, {{ORT threads (0 = all cores): (complaints/s, "
          f"CPU ms/complaint)}}: before {off['before']}, after {off['after']}; best "
          f"{r['offline']['best']}/s, {r['offline']['cpu_ms_per_complaint']} CPU ms/complaint")
    print(f"served/offline at {r['served'][-1]['clients']} clients: "
          f"{r['ratio_served_to_offline']:.0%} (target ≥ 70%, zero errors): "
          f"{'met' if r['target_met'] else 'NOT met'}")
    for x in r["served"]:
        for sample in x["error_samples"]:
            print(f"  error at {x['clients']} clients: {sample}")


if __name__ == "__main__":
    main()
