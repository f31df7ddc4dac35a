"""Duplicate detection on real labelled pairs: the bundle's embedding cosine vs char TF-IDF cosine.

Usage:
    python benchmarks/duplicates_eval.py --bundle runs/bundles/quick-1 --out runs/dup-eval-quick-1
    python benchmarks/duplicates_eval.py --bundle B --pairs pairs.jsonl.gz     # your own pairs
    python benchmarks/duplicates_eval.py --bundle B --save-threshold           # → var/index/<v>/

Pairs (`a_text`, `b_text`, `label`) are built from the Haikou follow-up tickets and repeat groups
and the Teddy Cup repeated messages (training/pairs.py documents the rules), split by time into a
calibration half, where the same-event threshold is chosen (best F1), and an evaluation half,
where ROC-AUC, average precision and precision/recall/F1 at that threshold are reported.
Exact repeats (same normalised text) are counted apart: serving finds them by hash.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from training.pairs import evaluate_bundle, render_table  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, required=True, help="bundle directory")
    parser.add_argument("--pairs", type=Path, help="labelled pairs JSONL[.gz] (default: built "
                        "from ../shared/data, else the vendored data/)")
    parser.add_argument("--haikou", type=Path, help="folder with the Haikou tickets and follow-ups")
    parser.add_argument("--teddy", type=Path, help="folder with messages-unlabelled-fj3.jsonl")
    parser.add_argument("--write-pairs", type=Path, help="also write the pairs used here")
    parser.add_argument("--out", type=Path, help="write report.json and report.md here")
    parser.add_argument("--save-threshold", action="store_true",
                        help="write the threshold to INDEX_DIR/<version>/threshold.json")
    parser.add_argument("--index-dir", type=Path, default=Path("var/index"),
                        help="serving's HUYING_INDEX_DIR (default var/index)")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads (default 1)")
    args = parser.parse_args(argv)
    report = evaluate_bundle(args.bundle, args.pairs, haikou_dir=args.haikou,
                             teddy_dir=args.teddy, write_pairs_to=args.write_pairs,
                             out_dir=args.out,
                             index_dir=args.index_dir if args.save_threshold else None,
                             threads=args.threads)
    print(render_table(report))
    print(json.dumps({k: report[k] for k in ("model_version", "pairs_from", "seconds")
                      + (("threshold_file",) if "threshold_file" in report else ())},
                     ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
