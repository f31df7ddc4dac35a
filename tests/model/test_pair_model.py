"""The same-event pair model: features of real-looking pairs, scoring, and its stored form."""

from __future__ import annotations

import numpy as np
import pytest

from model.errors import BundleError
from model.pair_model import FEATURES, PairModel, numbers, pair_features, places


def _feature(row, name):
    return row[FEATURES.index(name)]


def test_places_and_numbers_are_what_makes_an_event():
    a = "海甸二东路建设银行门口有流动摊贩占道经营"
    b = "海甸二东路建设银行门口又有摊贩占道"
    c = "龙昆南路农业银行门口有流动摊贩占道经营"
    assert "海甸二东路" in places(a) and places(a) & places(b)
    same, other = pair_features(0.9, 0.6, a, b, 2.0), pair_features(0.9, 0.8, a, c, 2.0)
    assert _feature(same, "place_overlap") > 0 and _feature(same, "places_disjoint") == 0
    assert _feature(other, "places_disjoint") == 1.0
    codes = pair_features(0.95, 0.9, "违章代码6011代表什么意思", "违章代码1301代表什么意思", 9.0)
    assert numbers("违章代码6011代表什么意思") == {"6011"}
    assert _feature(codes, "numbers_disjoint") == 1.0 and _feature(codes, "same_day") == 0.0
    assert numbers("请回电<电话>") == frozenset()  # a masked phone number is no evidence


def test_the_score_is_a_probability_that_rises_with_its_evidence():
    model = PairModel(coefficients=(1.0, 1.0, 2.0, -2.0, 1.0, -2.0, -0.5, 0.5),
                      intercept=-1.0)
    a = "海甸二东路建设银行门口有流动摊贩占道经营"
    scores = model.score([0.9, 0.9], [0.6, 0.6], a,
                         ["海甸二东路建设银行门口又有摊贩占道", "龙昆南路农业银行门口有流动摊贩占道经营"],
                         [1.0, 1.0])
    assert ((scores > 0) & (scores < 1)).all() and scores[0] > scores[1]
    assert model.score([], [], a, [], []).shape == (0,)


def test_the_stored_form_round_trips_and_a_foreign_one_is_refused():
    model = PairModel(tuple(float(i) for i in range(len(FEATURES))), 0.5)
    assert PairModel.from_dict(model.to_dict()) == model
    with pytest.raises(BundleError, match="retrain"):
        PairModel.from_dict({**model.to_dict(), "features": ["embedding_cosine"]})
    assert np.isfinite(model.probability(np.zeros((1, len(FEATURES))))).all()
