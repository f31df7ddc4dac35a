"""The lexical half of duplicate similarity: char 1–3-gram TF-IDF cosine, and the blend with the
embedding cosine that the similarity index serves.

Why both: the encoder is fine-tuned to tell categories apart, so its cosine sees the topic;
char n-grams see the concrete overlap (a place name, a shop, a plate) and miss paraphrases. On
real same-event pairs (training/duplicates.py) the full preset's blend ranks better than either half
and than a char TF-IDF baseline; the quick preset's weaker encoder does not get there (README).
The document frequencies are fitted on the bundle's training texts and shipped in the bundle
(`lexical.json`), so a model version fixes the whole similarity function. Pure Python and
numpy: serving needs no scikit-learn.

    lexical = Lexical.fit(training_texts)
    lexical.cosine("小区门口垃圾没人清理", "小区门口的垃圾一直没人清理")
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from model.errors import BundleError
from model.normalize import normalize_text

NGRAMS = (1, 3)
MIN_DF = 2  # rarer n-grams are not stored: they get the weight of an unseen one, nearly the same
# A trigram in at most this share of the training texts is rare: it names something. Chosen on
# the earlier hard pairs' cross-fitted AP among 1-, 2- and 3-grams, all or only those in at most
# 1% or 0.1% of the texts (README).
RARE_SHARE = 0.01
EMBEDDING_WEIGHT = 0.5  # the served similarity: 0.5 * embedding cosine + 0.5 * lexical cosine
# Vectors of recently seen texts: a window's candidates recur from query to query. A vector of
# a median complaint (40 characters, ~115 n-grams) takes ~14 KB as a dict: 4096 cost ~60 MB.
_CACHE = 4096

Vector = dict[str, float]


class Lexical:
    """Smoothed IDF over char n-grams of normalised, lower-cased text, as scikit-learn's
    `TfidfVectorizer(analyzer="char", ngram_range=(1, 3))` computes it: idf = ln((1 + n) /
    (1 + df)) + 1, raw counts, L2-normalised rows."""

    def __init__(self, df: Mapping[str, int], documents: int):
        if documents < 1:
            raise BundleError("lexical.json: `documents` must be at least 1")
        self.documents = documents
        self.df = dict(df)
        self._idf = {g: math.log((1 + documents) / (1 + d)) + 1 for g, d in self.df.items()}
        self._unseen = math.log(1 + documents) + 1
        self.vector = functools.lru_cache(maxsize=_CACHE)(self._vector)
        self.rare_trigrams = functools.lru_cache(maxsize=_CACHE)(self._rare_trigrams)

    @classmethod
    def fit(cls, texts: Iterable[str], min_df: int = MIN_DF) -> Lexical:
        df: Counter[str] = Counter()
        documents = 0
        for text in texts:
            df.update(set(char_ngrams(normalize_text(text))))
            documents += 1
        return cls({g: d for g, d in df.items() if d >= min_df}, max(documents, 1))

    def to_dict(self) -> dict[str, Any]:
        return {"analyzer": "char", "ngram_range": list(NGRAMS), "documents": self.documents,
                "df": dict(sorted(self.df.items()))}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Lexical:
        try:
            if list(data["ngram_range"]) != list(NGRAMS) or data["analyzer"] != "char":
                raise BundleError(f"lexical.json: char {data['ngram_range']}-grams, this code "
                                  f"computes char {list(NGRAMS)}-grams; retrain the bundle")
            return cls({str(g): int(d) for g, d in data["df"].items()}, int(data["documents"]))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BundleError(f"lexical.json is malformed: {exc!r}") from exc

    def _vector(self, normalised: str) -> Vector:
        counts = Counter(char_ngrams(normalised))
        weights = {g: c * self._idf.get(g, self._unseen) for g, c in counts.items()}
        norm = math.sqrt(sum(w * w for w in weights.values()))
        return {g: w / norm for g, w in weights.items()} if norm else {}

    def cosine(self, a: str, b: str) -> float:
        """Cosine of two already-normalised texts' TF-IDF vectors (0 when either is empty)."""
        return dot(self.vector(a), self.vector(b))

    def cosines(self, query: str, others: Sequence[str]) -> np.ndarray:
        q = self.vector(query)
        return np.array([dot(q, self.vector(o)) for o in others], dtype=np.float32)

    def _rare_trigrams(self, normalised: str) -> frozenset[str]:
        rare = RARE_SHARE * self.documents
        return frozenset(g for g in char_ngrams(normalised)
                         if len(g) == 3 and self.df.get(g, 0) <= rare)

    def shared_information(self, a: str, b: str) -> float:
        """log(1 + the summed IDF of the rare char trigrams two normalised texts share).

        Cosines are relative: two one-line enquiries ("美兰机场电话", "美兰机场电话的问题") are as
        close as two copies of a long report, but only the copies share much that is rare — a
        name, an address, a sentence. Unlike length, this counts only what both texts say; but two
        long complaints of one genre share much too, so the pair model must be fitted with such
        negatives (model/pair_model.py)."""
        shared = self.rare_trigrams(a) & self.rare_trigrams(b)
        return math.log1p(sum(self._idf.get(g, self._unseen) for g in shared))


def dot(a: Vector, b: Vector) -> float:
    if len(a) > len(b):
        a, b = b, a
    return min(sum(w * b.get(g, 0.0) for g, w in a.items()), 1.0)


def blend(embedding_cosine: Any, lexical_cosine: Any) -> Any:
    """The served similarity of two complaints (scalars or arrays alike)."""
    return EMBEDDING_WEIGHT * embedding_cosine + (1 - EMBEDDING_WEIGHT) * lexical_cosine


def char_ngrams(text: str) -> list[str]:
    text = text.lower()
    lo, hi = NGRAMS
    return [text[i:i + n] for n in range(lo, hi + 1) for i in range(len(text) - n + 1)]
