"""Can the char n-gram part route departments better? One-off probes, as the README reports them.

    python benchmarks/department_probes.py [--dataset data/datasets/haikou12345.yaml]

LinearSVC per variant on the train split's department labels (char TF-IDF of the normalised
texts, as training/lexical_heads.py fits it), accuracy on dev and test: n-gram ranges, feature
caps, C, and recent rows weighted up (half-life in days before the last train row). Then how
often the majority department of a ticket's true subcategory (train counts) is its department
on dev + test: the ceiling of deriving the department from the subcategory.
"""

from __future__ import annotations

import argparse
import warnings
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.svm import LinearSVC

from training.datasets import load_dataset

VARIANTS = [((1, 3), 50_000, 0.5, None), ((1, 3), None, 0.5, None), ((1, 4), None, 0.5, None),
            ((2, 4), None, 0.5, None), ((1, 3), 50_000, 0.3, None), ((1, 3), 50_000, 1.0, None),
            ((1, 3), 50_000, 0.5, 120), ((1, 3), 50_000, 0.5, 60), ((1, 3), 50_000, 0.5, 30)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=Path("data/datasets/haikou12345.yaml"))
    args = parser.parse_args()
    splits = load_dataset(args.dataset).split()
    rows = {s: [r for r in splits[s] if "department" in r.labels] for s in ("train", "dev", "test")}
    y = {s: np.array([r.labels["department"] for r in rs]) for s, rs in rows.items()}
    last = max(r.time for r in rows["train"] if r.time is not None)
    age = np.array([(last - r.time).days if r.time is not None else 0 for r in rows["train"]])
    print(f"train {len(y['train'])}, dev {len(y['dev'])}, test {len(y['test'])} rows")
    print("| n-grams | max features | C | half-life (days) | dev | test |\n|---|---|---|---|---|---|")
    for ngrams, cap, c, half_life in VARIANTS:
        vectorizer = TfidfVectorizer(analyzer="char", ngram_range=ngrams, min_df=2,
                                     sublinear_tf=True, max_features=cap, dtype=np.float32)
        x = vectorizer.fit_transform([r.text for r in rows["train"]])
        weight = np.ones(len(age)) if half_life is None else 0.5 ** (age / half_life)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            svm = LinearSVC(C=c).fit(x, y["train"], sample_weight=weight / weight.mean())
        acc = {s: float((svm.predict(vectorizer.transform([r.text for r in rows[s]])) == y[s]
                         ).mean()) for s in ("dev", "test")}
        print(f"| {ngrams[0]}–{ngrams[1]} | {cap or 'all'} | {c} | {half_life or '–'} | "
              f"{acc['dev']:.3f} | {acc['test']:.3f} |", flush=True)
    by_sub: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for r in splits["train"]:
        if "subcategory" in r.labels:
            by_sub[r.labels["subcategory"]][r.labels["department"]] += 1
    later = [r for s in ("dev", "test") for r in splits[s] if "subcategory" in r.labels]
    hits = [bool(by_sub[r.labels["subcategory"]]) and
            by_sub[r.labels["subcategory"]].most_common(1)[0][0] == r.labels["department"]
            for r in later]
    print(f"the true subcategory's majority train department is right on {np.mean(hits):.1%} "
          f"of {len(later)} dev + test rows")


if __name__ == "__main__":
    main()
