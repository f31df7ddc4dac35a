"""The same-event pair model: features of real-looking pairs, scoring, and its stored form."""

from __future__ import annotations

import numpy as np
import pytest

from model.errors import BundleError
from model.lexical import Lexical
from model.pair_model import FEATURES, PairModel, numbers, pair_features, places

A = "海甸二东路建设银行门口有流动摊贩占道经营"
B = "海甸二东路建设银行门口又有摊贩占道"
C = "龙昆南路农业银行门口有流动摊贩占道经营"
# a training corpus where enquiries are common and each stall is reported once or twice
LEXICAL = Lexical.fit([A, B, C] + ["美兰机场电话的问题", "车管所电话"] * 100
                      + [f"{i}号楼电梯故障" for i in range(200)])


def _feature(row, name):
    return row[FEATURES.index(name)]


def test_places_and_numbers_are_what_makes_an_event():
    a, b, c = A, B, C
    assert "海甸二东路" in places(a) and places(a) & places(b)
    same, other = pair_features(0.9, LEXICAL, a, b, 2.0), pair_features(0.9, LEXICAL, a, c, 2.0)
    assert _feature(same, "place_overlap") > 0 and _feature(same, "places_disjoint") == 0
    assert _feature(other, "places_disjoint") == 1.0
    codes = pair_features(0.95, LEXICAL, "违章代码6011代表什么意思", "违章代码1301代表什么意思",
                          9.0)
    assert numbers("违章代码6011代表什么意思") == {"6011"}
    assert _feature(codes, "numbers_disjoint") == 1.0 and _feature(codes, "same_day") == 0.0
    assert numbers("请回电<电话>") == frozenset()  # a masked phone number is no evidence


def test_the_score_is_a_probability_that_rises_with_its_evidence():
    model = PairModel(coefficients=(1.0, 1.0, 0.2, 2.0, -2.0, 1.0, -2.0, -0.5, 0.5),
                      intercept=-1.0)
    scores = model.score([0.9, 0.9], LEXICAL, A, [B, C], [1.0, 1.0])
    assert ((scores > 0) & (scores < 1)).all() and scores[0] > scores[1]
    assert model.score([], LEXICAL, A, [], []).shape == (0,)


def test_shared_information_counts_what_both_say_not_how_long_they_are():
    """Two generic one-line enquiries share nothing rare; two reports of one stall share its road
    and bank; a long text of common words shares nothing with them, however long."""
    info = LEXICAL.shared_information
    assert info("美兰机场电话的问题", "美兰机场电话") == 0.0  # what many ask is not rare
    assert info(A, B) > info(A, "海甸二东路有积水") > 0  # road and bank, against the road alone
    assert info(A, "12号楼电梯故障" * 5) == 0.0
    assert info(A, B) == info(B, A)
    assert info("", A) == 0.0


def test_the_stored_form_round_trips_and_a_foreign_one_is_refused():
    model = PairModel(tuple(float(i) for i in range(len(FEATURES))), 0.5)
    assert PairModel.from_dict(model.to_dict()) == model
    with pytest.raises(BundleError, match="retrain"):
        PairModel.from_dict({**model.to_dict(), "features": ["embedding_cosine"]})
    assert np.isfinite(model.probability(np.zeros((1, len(FEATURES))))).all()
