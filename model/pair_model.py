"""Same event or same topic: the duplicate score of two complaints.

Two complaints are one event when they name the same place or entity, the same numbers (house
number, plate, code), and come close in time — not when they only share a topic, which is what
cosines mostly measure. The pair model is a logistic regression over nine features of a pair:

    embedding cosine, char n-gram TF-IDF cosine (model/lexical.py),
    the information in the rare trigrams both share (`Lexical.shared_information`),
    overlap (Jaccard) of the places/entities named and whether both name some but none shared,
    overlap of the numbers and codes and whether both have some but none shared,
    log(1 + days apart), received the same day.

The length of the shorter text was a feature too, and raised the hard set's AP, but for the wrong
reason: the hard set's long texts are mostly Teddy reposts (same event) and its short ones
generic Haikou enquiries, so the model learned "long means one event" and grouped unrelated
long board messages into one hot issue (`huying hot-issues` on Teddy's 4,306 messages). It
was removed. Shared rare trigrams measure what both texts say, not how long either is, but
fitted on a set with almost no long same-period negatives they chained hot issues too (a
77-report issue of unrelated housing complaints; 18 of 40 grouping links read by hand were one
event). The links hot-issue grouping made were then read and added to the pair set as pairs
(data/pairs/hard-pairs.jsonl, `drawn`); fitted with them, 37 of 40 new links are one event.

Places and entities are spans ending in a place or organisation word (小区, 路, 村, 公司, 酒店 …,
`PLACE` below): on the hard pair set (data/pairs/hard-pairs.jsonl, later half) this gazetteer and
jieba's part-of-speech tags (ns/nt/nr/nz) gave the same average precision (0.928 both), so no
segmenter is needed. Its probability is the served duplicate score (fitted by
training/duplicates.py on labelled pairs, stored in the bundle's duplicates.json); a bundle
without one scores by `blend` of the two cosines, as before.

    model = PairModel.from_dict(record["pair_model"])
    p = model.score(embedding_cosines, lexical, text, candidate_texts, days_apart)
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from model.errors import BundleError
from model.lexical import Lexical

FEATURES = ("embedding_cosine", "lexical_cosine", "shared_information", "place_overlap",
            "places_disjoint", "number_overlap", "numbers_disjoint", "log_days_apart", "same_day")
PLACE = re.compile(
    r"[\u4e00-\u9fffA-Za-z0-9]{1,10}?(?:小区|花园|大厦|广场|公寓|家园|新村|新城|城|苑|村|组|路|街|巷"
    r"|大道|桥|镇|乡|公司|酒店|饭店|学校|小学|中学|大学|幼儿园|医院|市场|银行|工地|车站|站|港|号"
    r"|栋|幢|店|厂|场)")
NUMBER = re.compile(r"[A-Za-z]*\d+[A-Za-z\d]*|[A-Z]{2,}")


@lru_cache(maxsize=1 << 16)
def places(text: str) -> frozenset[str]:
    return frozenset(m.group() for m in PLACE.finditer(text))


@lru_cache(maxsize=1 << 16)
def numbers(text: str) -> frozenset[str]:
    return frozenset(m.group() for m in NUMBER.finditer(text.replace("<电话>", "")))


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def pair_features(embedding_cosine: float, lexical: Lexical, text_a: str, text_b: str,
                  days_apart: float) -> list[float]:
    """The FEATURES of one pair of normalised texts."""
    pa, pb, na, nb = places(text_a), places(text_b), numbers(text_a), numbers(text_b)
    days = abs(days_apart)
    return [embedding_cosine, lexical.cosine(text_a, text_b),
            lexical.shared_information(text_a, text_b),
            _jaccard(pa, pb), float(bool(pa and pb and not pa & pb)),
            _jaccard(na, nb), float(bool(na and nb and not na & nb)), math.log1p(days),
            float(days < 1)]


@dataclass(frozen=True)
class PairModel:
    coefficients: tuple[float, ...]
    intercept: float

    def probability(self, features: np.ndarray) -> np.ndarray:
        z = np.asarray(features, np.float64) @ np.asarray(self.coefficients) + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def score(self, embedding_cosines: Sequence[float] | np.ndarray, lexical: Lexical,
              text: str, others: Sequence[str], days_apart: Sequence[float]) -> np.ndarray:
        """P(same event) of `text` against each of `others` (normalised texts), with the
        bundle's lexical model."""
        if not len(others):
            return np.zeros(0)
        rows = [pair_features(float(e), lexical, text, o, float(d)) for e, o, d
                in zip(embedding_cosines, others, days_apart, strict=True)]
        return self.probability(np.array(rows))

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(FEATURES), "coefficients": list(self.coefficients),
                "intercept": self.intercept}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PairModel:
        if list(data.get("features", [])) != list(FEATURES) or \
                len(data.get("coefficients", [])) != len(FEATURES):
            raise BundleError(f"pair model features {data.get('features')} are not this code's "
                              f"{list(FEATURES)}: retrain the bundle's duplicate model")
        return cls(tuple(float(c) for c in data["coefficients"]), float(data["intercept"]))
