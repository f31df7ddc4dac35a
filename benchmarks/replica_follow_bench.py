"""How long a complaint registered on one replica takes to reach another replica's index.

    .venv/bin/python benchmarks/replica_follow_bench.py [--bundles bundles] [--n 100]
        [--database-url postgresql+psycopg://…] [--interval 0.5]

Two apps (the served bundle, in this process, each with its own index folder and maintenance
thread) on one store: SQLite by default. Each of `n` real Haikou complaints is registered on A;
B's index is then polled (every 5 ms) until it holds the complaint. Prints the lag's median, p99
and max. The lag is the follow interval (HUYING_INDEX_FOLLOW_INTERVAL_S) plus one embedding.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fastapi.testclient import TestClient  # noqa: E402

from serving.app import create_app  # noqa: E402
from serving.auth import Role, create_key  # noqa: E402
from serving.settings import load_settings  # noqa: E402
from training.datasets import read_rows  # noqa: E402

TICKETS = REPO / "data/haikou12345/tickets-2018-02-to-04.jsonl.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundles", type=Path, default=REPO / "bundles")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="huying-follow-"))
    key = create_key(root / "keys.json", Role.intake, name="bench")
    headers = {"Authorization": f"Bearer {key}"}
    url = args.database_url or f"sqlite:///{root / 'huying.db'}"
    apps = [create_app(load_settings(
        bundles_dir=args.bundles, api_keys_file=root / "keys.json",
        demo_keys_file=root / "demo.txt", index_dir=root / f"index-{name}", database_url=url,
        index_follow_interval_s=args.interval)) for name in "ab"]
    texts = [r["text"] for _, r in zip(range(args.n), read_rows(TICKETS), strict=False)]
    lags = []
    with TestClient(apps[0]) as a, TestClient(apps[1]) as b:
        follower = b.app.state.services.duplicates
        for i, text in enumerate(texts):
            a.post("/v1/complaints", json={"complaints": [{"id": f"c{i}", "text": text}]},
                   headers=headers).raise_for_status()
            started = time.monotonic()
            while f"c{i}" not in follower:
                if time.monotonic() - started > 30:
                    raise SystemExit(f"c{i} did not reach replica B in 30 s")
                time.sleep(0.005)
            lags.append(time.monotonic() - started)
    ms = np.array(lags) * 1000
    print(f"{len(ms)} complaints registered on A, follow interval {args.interval} s, "
          f"{url.split(':')[0]}: lag to B's index median {np.median(ms):.0f} ms, "
          f"p99 {np.percentile(ms, 99):.0f} ms, max {ms.max():.0f} ms")


if __name__ == "__main__":
    main()
