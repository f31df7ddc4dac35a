"""Instant replies (秒回) on the Teddy Cup messages with replies: how often a later message is
offered a reply, how similar, how good, and the quality of the replies per organisation.

Usage:
    python benchmarks/reply_suggestions.py                      # the active bundle in bundles/
    python benchmarks/reply_suggestions.py --bundle bundles/haikou12345-quick-1 --windows 30 365
    python benchmarks/reply_suggestions.py --variants           # also the relevance variants
    python benchmarks/reply_suggestions.py --quality-only --variants   # no model: seconds

The 2,799 messages (messages-with-replies-fj4.jsonl) are split by message time: the first 70%
are the memory, seeded with their replies exactly as `huying replies seed` does
(serving/reply_memory.py: registered through the registry, so routed, indexed and joined to hot
issues, replies posted as case events) into a scratch store; the last 30% are the queries, each
routed through the app's RoutingService (POST /v1/route's code path: the bundle's duplicate score
— its pair model and calibrated same-event threshold —, then serving/replies.py) with its own
time as `received_at`. The server's duplicate window is 30 days before the complaint
(HUYING_DUPLICATE_WINDOW_DAYS); `--windows` adds wider ones, since most queries come more than
30 days after the memory ends. Per window it prints the share of queries offered a reply, how
(via same_event / hot_issue), the similarity of the top suggestion, and its quality as an answer
to the query, beside the quality of the reply the query actually got. A reply posted after the
query came in is not counted (the memory holds every reply, the query would not have seen it).

"Rolling" is how a live server meets them: every message registered in time order (one at a
time, `--batch 1`), each offered the replies of the earlier ones (the registration response of
POST /v1/complaints), over the memory period while it is seeded and over the query period after.

Then the quality of all 2,799 replies (each against its own message) per replying organisation
(model/reply_quality.py `replying_organisation`), and, with `--variants`, the relevance variants
that model/reply_quality.py chose between. The top suggestion of each message offered one is
written to OUT/offered.jsonl (message, suggested reply, the message it answered) for reading,
with those offered only a reply posted after the message came in (`reply_after_message`); the
labels of the ones read by hand (data/teddy2020c/reply-suggestions-read.jsonl) are counted if
that file exists.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from model.reply_quality import (  # noqa: E402
    FUNCTION_CHARS,
    assess,
    bigram_cosine,
    content_bigrams,
    replying_organisation,
)
from serving.replies import MAX_REPLIES  # noqa: E402
from serving.reply_memory import AnsweredMessage, answered_messages, seed  # noqa: E402

MESSAGES = REPO.parent / "shared" / "data" / "teddy2020c" / "messages-with-replies-fj4.jsonl"
READ = REPO / "data" / "teddy2020c" / "reply-suggestions-read.jsonl"
ZONE = ZoneInfo("Asia/Shanghai")
BATCH = 32


def load(path: Path) -> tuple[list[AnsweredMessage], dict[str, dict[str, Any]]]:
    with open(path, encoding="utf-8") as f:
        raw = [(n, json.loads(line)) for n, line in enumerate(f, 1) if line.strip()]
    messages, bad = answered_messages(raw, zone=ZONE)
    if bad:
        print(f"{len(bad)} rows refused: {bad[:3]}")
    return messages, {f"fj4-{row['id']}": row for _, row in raw}


def quantiles(values: list[float]) -> str:
    if not values:
        return "-"
    v = sorted(values)
    q = [v[min(len(v) - 1, int(p * len(v)))] for p in (0.1, 0.25, 0.5, 0.75, 0.9)]
    return (f"min {v[0]:.3f}, p10 {q[0]:.3f}, p25 {q[1]:.3f}, median {q[2]:.3f}, "
            f"p75 {q[3]:.3f}, p90 {q[4]:.3f}, max {v[-1]:.3f} (n={len(v)})")


async def evaluate(bundle: Path | None, memory: list[AnsweredMessage],
                   queries: list[AnsweredMessage], windows: list[float], scratch: Path,
                   batch: int) -> dict[str, Any]:
    from serving.app import create_app
    from serving.settings import load_settings

    overrides: dict[str, Any] = {
        "database_url": f"sqlite:///{scratch / 'huying.db'}", "index_dir": scratch / "index",
        "api_keys_file": scratch / "keys.json", "demo_keys_file": scratch / "demo.txt",
        "max_complaints": 100}
    if bundle is not None:
        overrides["bundle"] = bundle
    settings = load_settings(**overrides)
    app = create_app(settings)
    out: dict[str, Any] = {"windows": {}, "rolling": {}}

    def collect(into: list[Any]) -> Any:
        return lambda messages, response: into.extend(response.results)

    async with app.router.lifespan_context(app):
        services = app.state.services
        if services.slot.router is None:
            raise SystemExit(f"no model: {services.slot.load_error}")
        out["model_version"] = services.slot.router.version
        out["thresholds"] = vars(services.duplicates.thresholds())
        # replies posted after a message came in did not exist yet when it did: ask for more
        # than the 3 served, drop those (report) and keep the 3 best left
        services.routing.replies.limit = 50
        started = time.perf_counter()
        out["rolling"]["memory"] = []
        report = await seed(services, memory, batch=batch,
                            on_registered=collect(out["rolling"]["memory"]))
        out["seed"] = {"messages": len(memory), "registered": report.registered,
                       "replies": report.replies, "failed": report.failed[:5],
                       "seconds": round(time.perf_counter() - started, 1)}
        print(f"memory seeded: {report.registered} complaints, {report.replies} replies in "
              f"{out['seed']['seconds']} s ({out['seed']['seconds'] / len(memory) * 1000:.0f} ms "
              f"a message, batches of {batch}) with {out['model_version']}; thresholds "
              f"{out['thresholds']}")
        base = services.duplicates.policy
        for days in windows:
            services.duplicates.policy = replace(base, window=timedelta(days=days))
            started = time.perf_counter()
            results = []
            for start in range(0, len(queries), BATCH):
                chunk = queries[start:start + BATCH]
                response = await services.routing.route(
                    {"complaints": [{"id": q.id, "text": q.text,
                                     "received_at": q.received_at.isoformat()} for q in chunk]},
                    max_complaints=BATCH, max_text_chars=settings.max_text_chars,
                    request_id=f"bench-{days}-{start}", model_version=out["model_version"])
                results += response.results
            out["windows"][days] = {"results": results,
                                    "seconds": round(time.perf_counter() - started, 1)}
        services.duplicates.policy = base
        out["rolling"]["queries"] = []
        await seed(services, queries, batch=batch,
                   on_registered=collect(out["rolling"]["queries"]))
    return out


def report_window(title: str, results: list[Any], by_id: dict[str, AnsweredMessage],
                  rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    later = []  # offered only replies posted after they came in: (result, first of those)
    for r in results:
        kept = [s for s in r.replies if s.replied_at <= by_id[r.id].received_at]
        if r.replies and not kept:
            later.append((r, r.replies[0]))
        r.replies = kept[:MAX_REPLIES]
    offered = [r for r in results if r.replies]
    same = sum(any(d.same_event for d in r.duplicates) for r in results)
    print(f"\n== {title}: {len(offered)} of {len(results)} offered a reply "
          f"({len(offered) / len(results):.1%}); {same} ({same / len(results):.1%}) have a "
          f"same-event duplicate; {len(later)} more were offered only replies posted after "
          "they came in (not counted)")
    out = [_row(title, by_id[r.id], s, rows, after=True) for r, s in later]
    if not offered:
        return out
    print("  replies per offered message:", dict(sorted(Counter(len(r.replies) for r in offered)
                                                       .items())))
    print("  top suggestion via:", dict(Counter(r.replies[0].via for r in offered)))
    print("  similarity of the top suggestion:", quantiles([r.replies[0].similarity
                                                           for r in offered]))
    gaps = [(by_id[r.id].received_at - r.replies[0].replied_at).total_seconds() / 86400
            for r in offered]
    print("  days from the suggested reply to the message:", quantiles(gaps))
    top = [r.replies[0].quality for r in offered]
    own = [assess(by_id[r.id].text, by_id[r.id].reply) for r in offered]
    for name in ("relevance", "completeness", "interpretability"):
        print(f"  {name}: suggested {statistics.mean(getattr(q, name) for q in top):.3f}, "
              f"the message's own reply {statistics.mean(getattr(q, name) for q in own):.3f}")
    return [_row(title, by_id[r.id], r.replies[0], rows, after=False) for r in offered] + out


def _row(title: str, q: AnsweredMessage, s: Any, rows: dict[str, dict[str, Any]], *,
         after: bool) -> dict[str, Any]:
    """One suggestion to read: the message, the suggested reply and the message it answered."""
    source = rows[s.source_complaint_id]
    return {"run": title, "query_id": q.id, "source_complaint_id": s.source_complaint_id,
            "reply_after_message": after, "similarity": s.similarity, "via": s.via,
            "relevance": s.quality.relevance, "query": q.text,
            "source": f"{source.get('title', '')}。{source.get('text', '')}",
            "suggested_reply": s.reply, "query_reply": q.reply}


def organisations(messages: list[AnsweredMessage], top: int = 15) -> None:
    groups: dict[str, list[Any]] = defaultdict(list)
    named = 0
    for m in messages:
        org = replying_organisation(m.reply)
        named += org is not None
        groups[org or "(not named)"].append(
            assess(m.text, m.reply, message_time=m.received_at, reply_time=m.replied_at))
    print(f"\n== quality of all {len(messages)} replies (each against its own message) by "
          f"replying organisation: named in {named} ({named / len(messages):.1%}), "
          f"{len(groups) - ('(not named)' in groups)} organisations")
    print(f"  {'organisation':28s} {'replies':>7s} {'relev.':>7s} {'compl.':>7s} {'interp.':>7s}"
          f" {'days (median)':>13s}")
    everyone = [q for qs in groups.values() for q in qs]
    ranked = sorted(groups.items(), key=lambda kv: -len(kv[1]))
    for name, qs in [("(all)", everyone)] + ranked[:top + 1]:
        days = [q.timeliness_days for q in qs if q.timeliness_days is not None]
        print(f"  {name:28s} {len(qs):7d} {statistics.mean(q.relevance for q in qs):7.3f} "
              f"{statistics.mean(q.completeness for q in qs):7.3f} "
              f"{statistics.mean(q.interpretability for q in qs):7.3f} "
              f"{statistics.median(days) if days else float('nan'):13.1f}")
    kinds: dict[str, list[Any]] = defaultdict(list)
    for name, qs in groups.items():
        kinds[_kind(name)] += qs
    print("  by kind of organisation (the end of its name):")
    for kind, qs in sorted(kinds.items(), key=lambda kv: -len(kv[1])):
        days = [q.timeliness_days for q in qs if q.timeliness_days is not None]
        print(f"  {kind:28s} {len(qs):7d} {statistics.mean(q.relevance for q in qs):7.3f} "
              f"{statistics.mean(q.completeness for q in qs):7.3f} "
              f"{statistics.mean(q.interpretability for q in qs):7.3f} "
              f"{statistics.median(days) if days else float('nan'):13.1f}")
    parts = {k: sum(getattr(q, k) for q in everyone) / len(everyone)
             for k in ("greeting", "handling", "closing", "basis", "reason")}
    parts["citations"] = sum(bool(q.citations) for q in everyone) / len(everyone)
    parts["substantive"] = sum(q.length >= 100 for q in everyone) / len(everyone)
    print("  share of replies with each part:", {k: round(v, 3) for k, v in parts.items()})


KINDS = (("街道办事处", "…街道"), ("街道", "…街道"), ("人民政府", "…政府"), ("政府", "…政府"),
         ("委员会", "…委员会"), ("管委会", "…委员会"), ("办公室", "…办"), ("办事处", "…办"),
         ("办", "…办"), ("局", "…局"), ("厅", "…局"), ("中心", "…中心"), ("支队", "…队/所"),
         ("大队", "…队/所"), ("派出所", "…队/所"))


def _kind(name: str) -> str:
    return next((kind for suffix, kind in KINDS if name.endswith(suffix)), name)


def variants(messages: list[AnsweredMessage]) -> None:
    """ROC-AUC of matching message/reply pairs against shuffled ones and against the reply of
    the message with the most similar title, for the relevance measures considered."""
    import math

    import numpy as np
    from scipy.sparse import csr_matrix

    def all_bigrams(text: str) -> list[str]:
        return [b for b in _bigrams(text)]

    def coverage(a: list[str], b: list[str]) -> float:
        sa = set(a)
        return len(sa & set(b)) / len(sa) if sa else 0.0

    def jaccard(a: list[str], b: list[str]) -> float:
        sa, sb = set(a), set(b)
        return len(sa & sb) / len(sa | sb) if sa | sb else 0.0

    df: Counter[str] = Counter()
    for m in messages:
        df.update(set(all_bigrams(m.text)))
        df.update(set(all_bigrams(m.reply)))
    n_docs = 2 * len(messages)

    def idf_coverage(a: list[str], b: list[str]) -> float:
        w = {k: math.log(n_docs / (1 + df[k])) for k in set(a)}
        total = sum(w.values())
        return sum(v for k, v in w.items() if k in set(b)) / total if total else 0.0

    measures = {
        "content-bigram cosine (chosen)": (content_bigrams, bigram_cosine),
        "bigram cosine": (all_bigrams, bigram_cosine),
        "bigram Jaccard": (all_bigrams, jaccard),
        "IDF-weighted share of the message's bigrams": (all_bigrams, idf_coverage),
        "share of the message's bigrams": (all_bigrams, coverage),
    }
    rng = random.Random(0)
    shuffled = list(range(len(messages)))
    rng.shuffle(shuffled)
    titles = [m.text.split("。", 1)[0] for m in messages]
    vocab: dict[str, int] = {}
    rows, cols, vals = [], [], []
    for i, t in enumerate(titles):
        for b, c in Counter(_bigrams(t)).items():
            rows.append(i)
            cols.append(vocab.setdefault(b, len(vocab)))
            vals.append(float(c))
    x = csr_matrix((vals, (rows, cols)), shape=(len(titles), len(vocab)))
    norms = np.sqrt(np.asarray(x.multiply(x).sum(1)).ravel()) + 1e-12
    sims = (x @ x.T).toarray() / np.outer(norms, norms)
    np.fill_diagonal(sims, -1)
    nearest = sims.argmax(1)
    print(f"\n== relevance variants on {len(messages)} message/reply pairs (ROC-AUC; medians)")
    for name, (grams, score) in measures.items():
        pos = [score(grams(m.text), grams(m.reply)) for m in messages]
        neg = [score(grams(messages[i].text), grams(messages[j].reply))
               for i, j in enumerate(shuffled) if i != j]
        hard = [score(grams(messages[i].text), grams(messages[j].reply))
                for i, j in enumerate(nearest)]
        print(f"  {name:46s} shuffled {_auc(pos, neg):.3f}, nearest title {_auc(pos, hard):.3f};"
              f" median matching {statistics.median(pos):.3f}, shuffled "
              f"{statistics.median(neg):.3f}")
    print(f"  (function characters dropped by the chosen one: {''.join(sorted(FUNCTION_CHARS))})")


def _bigrams(text: str) -> list[str]:
    import re
    import unicodedata

    runs = re.findall(r"[\u4e00-\u9fffA-Za-z0-9]+", unicodedata.normalize("NFKC", text))
    return [r[i:i + 2] for r in runs for i in range(len(r) - 1)]


def _auc(pos: list[float], neg: list[float]) -> float:
    from bisect import bisect_left, bisect_right

    ordered = sorted(neg)
    wins = sum(bisect_left(ordered, p) + (bisect_right(ordered, p) - bisect_left(ordered, p)) / 2
               for p in pos)
    return wins / (len(pos) * len(neg))


def read_labels(offered: list[dict[str, Any]]) -> None:
    if not READ.is_file():
        print(f"\n(no {READ.relative_to(REPO)} yet: read 50 of OUT/offered.jsonl and label them)")
        return
    labels = [json.loads(line) for line in READ.read_text(encoding="utf-8").splitlines()
              if line.strip()]
    known = {(o["query_id"], o["source_complaint_id"]) for o in offered}
    found = sum((x["query_id"], x["source_complaint_id"]) in known for x in labels)
    print(f"\n== {len(labels)} suggestions read by hand ({found} found again in this run): "
          "does the suggested reply answer the message?")
    for after in (False, True):
        counts = Counter(x["answers"] for x in labels if x["reply_after_message"] is after)
        which = "reply posted after the message came in" if after else \
            "offered when the message came in"
        print(f"  {which:40s} yes {counts['yes']}, partly {counts['partly']}, no {counts['no']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, help="default: the active one in bundles/")
    parser.add_argument("--messages", type=Path, default=MESSAGES)
    parser.add_argument("--memory-share", type=float, default=0.7)
    parser.add_argument("--limit", type=int, help="only the first N rows of the file (a check)")
    parser.add_argument("--batch", type=int, default=1,
                        help="messages per registration while seeding (1: each sees the "
                             "replies of all the earlier ones)")
    parser.add_argument("--windows", type=float, nargs="+", default=[30.0],
                        help="duplicate windows in days (the server's default: 30)")
    parser.add_argument("--variants", action="store_true", help="compare relevance measures")
    parser.add_argument("--quality-only", action="store_true",
                        help="only the per-organisation quality (and --variants): no model")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "reply-suggestions")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    messages, rows = load(args.messages)
    if args.limit:
        messages = messages[:args.limit]
    messages.sort(key=lambda m: (m.received_at, m.id))
    cut = int(len(messages) * args.memory_share)
    memory, queries = messages[:cut], messages[cut:]
    print(f"{len(messages)} messages: memory {len(memory)} ({memory[0].received_at:%Y-%m-%d} – "
          f"{memory[-1].received_at:%Y-%m-%d}), queries {len(queries)} "
          f"({queries[0].received_at:%Y-%m-%d} – {queries[-1].received_at:%Y-%m-%d})")
    if args.quality_only:
        organisations(messages)
        if args.variants:
            variants(messages)
        return
    with tempfile.TemporaryDirectory() as scratch:
        result = asyncio.run(evaluate(args.bundle, memory, queries, args.windows, Path(scratch),
                                      args.batch))
    by_id = {m.id: m for m in messages}
    offered = []
    for days, run in result["windows"].items():
        offered += report_window(f"queries, memory only, window {days:g} days", run["results"],
                                 by_id, rows)
        print(f"  ({run['seconds']} s to route {len(queries)} queries)")
    for part, results in result["rolling"].items():
        offered += report_window(f"rolling, the {part} period: each message against all the "
                                 "earlier ones (registered in time order, window 30 days)",
                                 results, by_id, rows)
    args.out.mkdir(parents=True, exist_ok=True)
    unique = {(o["query_id"], o["source_complaint_id"]): o for o in offered}
    with open(args.out / "offered.jsonl", "w", encoding="utf-8") as f:
        for o in unique.values():
            f.write(json.dumps(o, ensure_ascii=False) + "\n")
    offered = list(unique.values())
    now = sum(not o["reply_after_message"] for o in offered)
    print(f"\n{len(offered)} suggestions written to {args.out / 'offered.jsonl'}: {now} offered "
          f"when the message came in, {len(offered) - now} only with a reply posted after it")
    organisations(messages)
    if args.variants:
        variants(messages)
    read_labels(offered)


if __name__ == "__main__":
    main()
