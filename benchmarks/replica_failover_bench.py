"""Failover benchmark: 32 clients across 2 replicas, throughput, p99 and errors with one replica
killed mid-run.

    .venv/bin/python benchmarks/replica_failover_bench.py --bundles bundles
    .venv/bin/python benchmarks/replica_failover_bench.py --bundles /tmp/tiny-bundles --seconds 20

Creates a scratch PostgreSQL database (on HUYING_TEST_POSTGRES, default
postgresql://postgres@127.0.0.1:5432/postgres; `--database-url` uses an existing one instead and
leaves it, `--sqlite` a SQLite file), an intake key, and starts two replicas (`python -m
serving.main` on free ports, access log off, logs in a temp folder) on `--bundles` (a folder with
an ACTIVE file), one after the other so they do not migrate the empty store at once.

`--clients` threads then register real Haikou complaints (`POST /v1/complaints`, `--batch` per
request, unique ids) for `--seconds`. Client i starts on replica i % 2; on a connection error,
a timeout or a 5xx it retries the same request (same ids: registration is idempotent, and
`already_registered` counts as success) on the other replica, up to `--tries` attempts, after
the 503's `Retry-After` (an overloaded replica says how long) or else a short backoff, and
stays there while it answers. At `--kill-at` of the run replica A gets SIGKILL.

Reported per phase (before the kill, after it, overall; a request belongs to the phase in which it
was acknowledged or given up): requests acknowledged, complaints/s, p50/p95/p99 latency of the
acknowledged requests measured from the client's first attempt (so retries are included),
retries, and client-visible errors (requests that failed after all attempts, or an item refused
for another reason than `already_registered`). Then the store is read: every acknowledged id must
be stored exactly once; the exit status is 1 if one is missing or duplicated. The surviving
replica is stopped and the scratch database dropped at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from serving.auth import Role, create_key  # noqa: E402
from training.datasets import read_rows  # noqa: E402

# data/datasets/haikou12345.yaml's first source: the current-taxonomy tickets
TICKETS = REPO / "data" / "haikou12345" / "tickets-2018-02-to-04.jsonl.gz"
ADMIN_URL = os.environ.get("HUYING_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
RETRYABLE = (httpx.TransportError,)  # refused, reset, timed out, protocol errors


def load_texts(path: Path | None, seed: int = 0) -> list[str]:
    """Complaint texts: the `text` field of a JSONL/CSV file (optionally gzipped), else lines."""
    path = path or TICKETS
    if ".jsonl" in path.suffixes or ".csv" in path.suffixes:
        texts = [t for row in read_rows(path) if isinstance(t := row.get("text"), str)
                 and t.strip()]
    else:
        texts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
                 if line.strip()]
    if not texts:
        raise SystemExit(f"no texts in {path}")
    random.Random(seed).shuffle(texts)
    return texts


# --- the store -----------------------------------------------------------------------------------

@contextmanager
def scratch_postgres(admin_url: str) -> Iterator[str]:
    """A new database on the server of `admin_url`, dropped (WITH FORCE) afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(admin_url).set(drivername="postgresql+psycopg")
    name = f"huying_failover_{secrets.token_hex(4)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        print(f"dropped the scratch database {name}")


def stored_counts(url: str, ids: set[str]) -> dict[str, int]:
    """How often each of `ids` is stored (ids not stored are left out)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as c:
            rows = c.execute(text("SELECT id, count(*) FROM complaints GROUP BY id")).all()
    finally:
        engine.dispose()
    counts = {str(i): int(n) for i, n in rows}
    return {"__total__": sum(counts.values()), **{i: n for i, n in counts.items() if i in ids},
            "__unacknowledged__": sum(1 for i in counts if i not in ids)}


# --- the replicas --------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Replica:
    name: str
    url: str
    process: subprocess.Popen
    log: Path


@contextmanager
def replica(name: str, workdir: Path, bundles: Path, keys_file: Path,
            database_url: str) -> Iterator[Replica]:
    """`python -m serving.main` on a free port, ready (/readyz 200); stopped afterwards."""
    port = free_port()
    env = {**os.environ, "HUYING_BUNDLES_DIR": str(bundles), "HUYING_API_KEYS_FILE": str(keys_file),
           "HUYING_DEMO_KEYS_FILE": str(workdir / "demo-keys.txt"),
           "HUYING_DATABASE_URL": database_url, "HUYING_INDEX_DIR": str(workdir / f"index-{name}"),
           "HUYING_HOST": "127.0.0.1", "HUYING_PORT": str(port), "HUYING_ACCESS_LOG": "false",
           "HUYING_LOG_LEVEL": "warning"}
    env.pop("HUYING_BUNDLE", None)  # serve what bundles/ACTIVE names
    log = workdir / f"replica-{name}.log"
    with open(log, "wb") as out:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen([sys.executable, "-m", "serving.main"], cwd=REPO, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    r = Replica(name, f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{r.url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None:
                raise SystemExit(f"replica {name} exited with {process.returncode}:\n"
                                 f"{log.read_text(errors='replace')}")
            if time.monotonic() > deadline:
                raise SystemExit(f"replica {name} was not ready after 180 s:\n"
                                 f"{log.read_text(errors='replace')}")
            time.sleep(0.2)
        yield r
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


# --- the clients ---------------------------------------------------------------------------------

@dataclass
class Outcome:
    """One request: when its first attempt started, when it was acknowledged or given up."""

    started: float
    finished: float
    ids: list[str]
    attempts: int
    ok: bool
    error: str  # why it was not acknowledged
    failed: list[str]  # why each failed attempt failed
    first: str  # the replica of the first attempt


@dataclass
class Run:
    outcomes: list[Outcome] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    samples: dict[str, str] = field(default_factory=dict)  # a failed attempt's detail, per cause

    def failed(self, cause: str, detail: str) -> None:
        with self.lock:
            self.samples.setdefault(cause, detail)

    def add(self, outcome: Outcome) -> None:
        with self.lock:
            self.outcomes.append(outcome)


def client(n: int, urls: tuple[str, str], key: str, texts: list[str], args: argparse.Namespace,
           run: Run, barrier: threading.Barrier) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    # one keep-alive connection per replica, as one intake system would hold
    sessions = [httpx.Client(base_url=u, headers=headers, timeout=args.timeout,
                             limits=httpx.Limits(max_connections=1)) for u in urls]
    current = n % 2
    try:
        barrier.wait()
        sequence = 0
        while not run.stop.is_set():
            ids = [f"f{n}-{sequence}-{j}" for j in range(args.batch)]
            body = {"complaints": [
                {"id": cid, "text": texts[(n * 7919 + sequence * args.batch + j) % len(texts)]}
                for j, cid in enumerate(ids)]}
            sequence += 1
            started, first = time.monotonic(), "AB"[current]
            failed: list[str] = []
            wait: float | None = None  # the last 503's Retry-After
            for attempt in range(1, args.tries + 1):
                if attempt > 1:
                    time.sleep(wait if wait is not None else args.backoff * 2 ** (attempt - 2))
                wait = None
                try:
                    r = sessions[current].post("/v1/complaints", json=body)
                except RETRYABLE as exc:
                    failed.append(f"{type(exc).__name__} on {'AB'[current]}")
                    detail = str(exc)
                else:
                    if r.status_code < 500:
                        refused = _refused(r)
                        run.add(Outcome(started, time.monotonic(), ids, attempt, not refused,
                                        refused, failed, first))
                        break
                    failed.append(f"{r.status_code} on {'AB'[current]}")
                    detail = r.text[:200]
                    wait = _retry_after(r)
                run.failed(failed[-1], detail)
                current = 1 - current  # fail over (and stay) on the other replica
            else:
                run.add(Outcome(started, time.monotonic(), ids, args.tries, False,
                                f"{failed[-1]}: {detail}", failed, first))
    finally:
        for s in sessions:
            s.close()


def _retry_after(r: httpx.Response) -> float | None:
    """The seconds a 503 asks the client to wait (RFC 9110: delay-seconds), if it says."""
    try:
        return max(0.0, float(r.headers["retry-after"]))
    except (KeyError, ValueError):
        return None


def _refused(r: httpx.Response) -> str:
    """'' if every item is registered (or already was), else why not."""
    if r.status_code != 200:
        return f"{r.status_code}: {r.text[:200]}"
    bad = [x["error"] for x in r.json()["results"]
           if x["error"] is not None and x["error"]["code"] != "already_registered"]
    return f"200 with item errors: {bad[:2]}" if bad else ""


# --- the report ----------------------------------------------------------------------------------

def phase_row(name: str, outcomes: list[Outcome], seconds: float) -> str:
    acked = [o for o in outcomes if o.ok]
    complaints = sum(len(o.ids) for o in acked)
    ms = np.array([o.finished - o.started for o in acked]) * 1000
    p = (lambda q: f"{np.percentile(ms, q):.0f}") if len(ms) else (lambda q: "–")
    retries = sum(o.attempts - 1 for o in outcomes)
    errors = sum(1 for o in outcomes if not o.ok)
    return (f"| {name} | {seconds:.1f} | {len(acked)} | {complaints / seconds:.1f} | {p(50)} | "
            f"{p(95)} | {p(99)} | {retries} | {errors} |")


def report(run: Run, t0: float, killed_at: float, ended: float, args: argparse.Namespace) -> None:
    before = [o for o in run.outcomes if o.finished < killed_at]
    after = [o for o in run.outcomes if o.finished >= killed_at]
    print("\n| phase | seconds | requests acknowledged | complaints/s | p50 ms | p95 ms | p99 ms "
          "| retries | client-visible errors |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(phase_row("before the kill", before, killed_at - t0))
    print(phase_row("after the kill", after, ended - killed_at))
    print(phase_row("overall", run.outcomes, ended - t0))
    caught = [o for o in run.outcomes
              if o.first == "A" and o.started < killed_at <= o.finished]
    if caught:
        worst = max(o.finished - o.started for o in caught) * 1000
        print(f"\n{len(caught)} requests were in flight on A when it was killed; acknowledged "
              f"after it, they took up to {worst:.0f} ms from their first attempt.")
    for name, phase in (("before the kill", before), ("after the kill", after)):
        causes = Counter(c for o in phase for c in o.failed)
        print(f"failed attempts {name}: " + (", ".join(
            f"{n} × {c}" for c, n in causes.most_common()) or "none"))
    for cause, detail in run.samples.items():
        print(f"  e.g. {cause}: {detail}")
    failed = [o for o in run.outcomes if not o.ok]
    for o in failed[:5]:
        print(f"  error ({o.attempts} attempts, {o.finished - t0:.1f} s in): {o.error}")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundles", type=Path, default=REPO / "bundles",
                        help="bundles folder with an ACTIVE file")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--batch", type=int, default=1, help="complaints per request")
    parser.add_argument("--kill-at", type=float, default=0.5,
                        help="when to SIGKILL replica A, as a fraction of --seconds")
    parser.add_argument("--tries", type=int, default=5, help="attempts per request")
    parser.add_argument("--backoff", type=float, default=0.05,
                        help="seconds before the first retry, doubled for each further one")
    parser.add_argument("--timeout", type=float, default=30.0, help="per attempt, seconds")
    parser.add_argument("--texts", type=Path, default=None,
                        help=f"JSONL/CSV with a text field, or one text a line (default {TICKETS})")
    store = parser.add_mutually_exclusive_group()
    store.add_argument("--database-url", default=None,
                       help="an existing store to use (not dropped) instead of a scratch database")
    store.add_argument("--sqlite", action="store_true", help="a SQLite file in the temp folder")
    args = parser.parse_args(argv)
    if not (args.bundles / "ACTIVE").is_file():
        raise SystemExit(f"{args.bundles} has no ACTIVE file: pass --bundles DIR")
    if not 0 < args.kill_at < 1:
        raise SystemExit("--kill-at must be between 0 and 1")
    texts = load_texts(args.texts)
    version = (args.bundles / "ACTIVE").read_text().strip()

    # SIGTERM stops the run as Ctrl-C does, so the finally blocks below still clean up
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)  # also when started in the background (ignored)
    run = Run()
    threads: list[threading.Thread] = []
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="huying-failover-")))
        if args.database_url:
            url = args.database_url
        elif args.sqlite:
            url = f"sqlite:///{workdir / 'huying.db'}"
        else:
            url = stack.enter_context(scratch_postgres(ADMIN_URL))
        store_name = url.split("://", 1)[0] + (" (scratch)" if not args.database_url else "")
        keys_file = workdir / "api_keys.json"
        key = create_key(keys_file, Role.intake, name="failover benchmark")
        a = stack.enter_context(replica("A", workdir, args.bundles, keys_file, url))
        b = stack.enter_context(replica("B", workdir, args.bundles, keys_file, url))

        @stack.callback
        def _stop_clients() -> None:  # on Ctrl-C too: before the replicas and the store go
            run.stop.set()
            for t in threads:
                t.join(5)  # daemon threads: one still waiting for a reply dies with the process

        print(f"bundle {version} ({args.bundles}); store {store_name}; replicas A {a.url}, "
              f"B {b.url}; logs in {workdir}")
        print(f"{args.clients} client threads × {args.seconds:.0f} s, {args.batch} complaint(s) "
              f"per request from {len(texts)} texts ({args.texts or TICKETS}); SIGKILL to A at "
              f"{args.kill_at:.0%}; up to {args.tries} attempts, backoff {args.backoff} s; "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}", flush=True)
        barrier = threading.Barrier(args.clients + 1)
        threads.extend(threading.Thread(target=client, daemon=True, name=f"client-{n}",
                                        args=(n, (a.url, b.url), key, texts, args, run, barrier))
                       for n in range(args.clients))
        for t in threads:
            t.start()
        barrier.wait()
        t0 = time.monotonic()
        time.sleep(args.seconds * args.kill_at)
        a.process.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        a.process.wait(10)
        print(f"SIGKILL sent to replica A at {killed_at - t0:.1f} s", flush=True)
        time.sleep(max(0.0, t0 + args.seconds - time.monotonic()))
        run.stop.set()
        for t in threads:
            t.join(args.timeout * args.tries + 5)
        ended = time.monotonic()
        b_alive = b.process.poll() is None
        print(f"run ended at {ended - t0:.1f} s (the last requests drained); load average "
              f"{os.getloadavg()[0]:.2f}; replica B {'still up' if b_alive else 'DIED'}")
        report(run, t0, killed_at, ended, args)

        acknowledged = {i for o in run.outcomes if o.ok for i in o.ids}
        counts = stored_counts(url, acknowledged)
        total, unacked = counts.pop("__total__"), counts.pop("__unacknowledged__")
        missing = acknowledged - counts.keys()
        duplicated = {i: n for i, n in counts.items() if n > 1}
        print(f"\nstore: {total} complaints stored; {len(acknowledged)} ids acknowledged, "
              f"{len(acknowledged) - len(missing)} of them stored, {len(missing)} missing, "
              f"{len(duplicated)} stored more than once; {unacked} stored but never "
              "acknowledged (their request failed on every attempt)")
        for i in sorted(missing)[:5]:
            print(f"  missing: {i}")
        for i, n in sorted(duplicated.items())[:5]:
            print(f"  stored {n} times: {i}")
        ok = not missing and not duplicated
        print("store check:", "every acknowledged id is stored exactly once" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted: the replicas are stopped and the scratch database is dropped",
              file=sys.stderr)
        sys.exit(130)
