"""Replay the Haikou tickets as cases through the API, then check that /v1/stats and
`huying stats` agree to the row, count the early warnings, and write one department's letter.

    .venv/bin/python benchmarks/case_replay.py [--bundles bundles] [--out runs/replay]

Every Feb–Apr 2018 ticket is registered (POST /v1/complaints, received on its ticket date at a
random time of the working day) with the active bundle in this process (FastAPI's TestClient,
a fresh SQLite store). Its case then follows synthetic times drawn from the rule the operators
state ("contact the citizen within 30 minutes"): assigned to the routed department 1–5 minutes
after it came in, replied after an exponential delay with mean 15 minutes (so about 14% miss the
limit), closed after a further exponential delay with mean 20 hours; 10% stay open. Seeded.

Then: GET /v1/stats (weekly, the whole period) and its CSV tables against `huying stats` on
the exported cases.csv, table by table and row by row; POST /v1/warnings/detect for every April
day; GET /v1/letters/{the busiest department}?format=pdf, page 1 rendered to PNG to look at.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fastapi.testclient import TestClient  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from cli import app as cli_app  # noqa: E402
from serving.app import create_app  # noqa: E402
from serving.auth import Role, create_key  # noqa: E402
from serving.settings import load_settings  # noqa: E402
from training.datasets import read_rows  # noqa: E402

TICKETS = REPO / "data/haikou12345/tickets-2018-02-to-04.jsonl.gz"
ZONE = ZoneInfo("Asia/Shanghai")
BATCH = 100
PERIOD = {"from": "2018-02-01", "to": "2018-04-30", "by": "week"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundles", type=Path, default=REPO / "bundles")
    parser.add_argument("--out", type=Path, default=REPO / "runs/replay")
    parser.add_argument("--limit", type=int, default=0, help="only the first N tickets (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    rows = sorted(read_rows(TICKETS), key=lambda r: r["ticket_id"])
    rows = rows[:args.limit] if args.limit else rows
    args.out.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="huying-replay-"))
    keys = {role: create_key(root / "keys.json", role, name=f"replay {role.value}")
            for role in (Role.intake, Role.officer)}
    headers = {role: {"Authorization": f"Bearer {key}"} for role, key in keys.items()}
    settings = load_settings(bundles_dir=args.bundles, api_keys_file=root / "keys.json",
                             demo_keys_file=root / "demo.txt", index_dir=root / "index",
                             database_url=f"sqlite:///{root / 'huying.db'}",
                             max_complaints=BATCH)
    started = time.perf_counter()
    with TestClient(create_app(settings)) as client:
        events = register(client, headers, rows, rng)
        print(f"registered {len(rows)} tickets and posted {events} case events in "
              f"{time.perf_counter() - started:.0f} s")
        compare(client, headers, args.out)
        warn(client, headers)
        letter(client, headers, args.out)


def register(client: TestClient, headers, rows, rng: random.Random) -> int:
    posted = 0
    for start in range(0, len(rows), BATCH):
        chunk = rows[start:start + BATCH]
        received = {r["ticket_id"]: datetime.strptime(r["ticket_id"][:8], "%Y%m%d").replace(
            hour=8, tzinfo=ZONE) + timedelta(minutes=rng.uniform(0, 600)) for r in chunk}
        r = client.post("/v1/complaints", headers=headers[Role.intake], json={"complaints": [
            {"id": t["ticket_id"], "text": t["text"], "channel": "12345热线",
             "received_at": received[t["ticket_id"]].isoformat()} for t in chunk]})
        r.raise_for_status()
        for result in r.json()["results"]:
            if result.get("error"):
                continue
            cid, at = result["id"], received[result["id"]]
            department = (result["routing"].get("department") or {}).get("label")
            steps = []
            at += timedelta(minutes=rng.uniform(1, 5))
            if department:
                steps.append({"kind": "assigned", "at": at, "department": department})
            at += timedelta(minutes=rng.expovariate(1 / 15))
            steps.append({"kind": "replied", "at": at, "reply": "已联系市民，正在处理。"})
            if rng.random() >= 0.10:
                steps.append({"kind": "closed", "at": at + timedelta(
                    hours=rng.expovariate(1 / 20))})
            for n, step in enumerate(steps):
                body = step | {"event_id": f"{cid}-{n}", "at": step["at"].isoformat()}
                client.post(f"/v1/complaints/{cid}/events", headers=headers[Role.intake],
                            json=body).raise_for_status()
                posted += 1
    return posted


def compare(client: TestClient, headers, out: Path) -> None:
    stats = client.get("/v1/stats", params=PERIOD, headers=headers[Role.officer]).json()
    s = stats["summary"]
    print(f"/v1/stats: {s['complaints']} complaints, {s['closed']} closed ({s['closed_share']}), "
          f"median {s['close_hours_median']} h, p90 {s['close_hours_p90']} h to close; "
          f"{s['overdue']} of {s['with_time_limit']} with a limit overdue "
          f"({s['overdue_share']}); {s['repeats']} repeats; {len(stats['departments'])} "
          f"departments, {len(stats['volumes'])} volume rows")
    tables = {t: client.get(f"/v1/stats/{t}.csv", params=PERIOD,
                            headers=headers[Role.officer]).text
              for t in ("summary", "volumes", "departments", "cases")}
    (out / "cases.csv").write_text(tables["cases"], encoding="utf-8")
    result = CliRunner().invoke(cli_app, ["stats", str(out / "cases.csv"), "--from",
                                          PERIOD["from"], "--to", PERIOD["to"], "--by", "week",
                                          "--as-of", stats["as_of"], "--out", str(out / "cli")])
    assert result.exit_code == 0, result.output
    for table in ("summary", "volumes", "departments"):
        api = tables[table].splitlines()
        cli = (out / "cli" / f"{table}.csv").read_text(encoding="utf-8").splitlines()
        same = sum(a == c for a, c in zip(api, cli, strict=False))
        print(f"  {table}: API {len(api) - 1} rows, huying stats {len(cli) - 1} rows, "
              f"{same - 1} identical" + ("" if api == cli else "  ← DIFFERENT"))


def warn(client: TestClient, headers) -> None:
    kinds: Counter[str] = Counter()
    started = time.perf_counter()
    for day in range(1, 31):
        r = client.post("/v1/warnings/detect", json={"day": f"2018-04-{day:02d}"},
                        headers=headers[Role.officer])
        r.raise_for_status()
        kinds.update(w["kind"] for w in r.json()["added"])
    print(f"warnings for the 30 April days ({time.perf_counter() - started:.0f} s): "
          + ", ".join(f"{k} {n}" for k, n in kinds.most_common()))


def letter(client: TestClient, headers, out: Path) -> None:
    stats = client.get("/v1/stats", params={"from": "2018-04-01", "to": "2018-04-30"},
                       headers=headers[Role.officer]).json()
    department = stats["departments"][0]["department"]
    params = {"from": "2018-04-01", "to": "2018-04-30"}
    md = client.get(f"/v1/letters/{department}", params=params, headers=headers[Role.officer])
    pdf = client.get(f"/v1/letters/{department}", params=params | {"format": "pdf"},
                     headers=headers[Role.officer])
    md.raise_for_status()
    pdf.raise_for_status()
    (out / "letter.md").write_text(md.text, encoding="utf-8")
    (out / "letter.pdf").write_bytes(pdf.content)
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(out / "letter.pdf")
    document[0].render(scale=1.5).to_pil().save(out / "letter-page-1.png")
    print(f"letter to {department}: {len(document)} page(s), {out / 'letter.pdf'}, page 1 at "
          f"{out / 'letter-page-1.png'}")
    print(json.dumps({"department": department, "chars": len(md.text)}, ensure_ascii=False))


if __name__ == "__main__":
    main()
