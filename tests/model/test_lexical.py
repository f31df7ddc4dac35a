"""The lexical similarity: scikit-learn's char TF-IDF cosine, serialisable, bounded, symmetric."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.feature_extraction.text import TfidfVectorizer

from model.errors import BundleError
from model.lexical import Lexical, blend
from model.normalize import normalize_text

TEXTS = ["小区门口垃圾没人清理,臭气熏天", "小区门口的垃圾一直没人清理", "龙华路有车辆乱停放堵住消防通道",
         "龙华路消防通道被车堵住", "公司拖欠工资三个月", "某某公司拖欠员工工资", "楼上装修噪音太大",
         "ABC酒吧晚上噪音扰民"]


def test_cosines_are_scikit_learns_char_tfidf_cosines():
    lexical = Lexical.fit(TEXTS, min_df=1)
    normalised = [normalize_text(t) for t in TEXTS]
    sparse = TfidfVectorizer(analyzer="char", ngram_range=(1, 3)).fit_transform(normalised)
    expected = (sparse @ sparse.T).toarray()
    for i, a in enumerate(normalised):
        assert lexical.cosines(a, normalised) == pytest.approx(expected[i], abs=1e-6)


def test_unseen_ngrams_weigh_as_rare_ones():
    lexical = Lexical.fit(TEXTS)
    # the shared rare place name outweighs the shared common words
    query = "幸福里小区垃圾"
    assert lexical.cosine(query, "幸福里小区漏水") > lexical.cosine(query, "阳光小区垃圾")


@settings(max_examples=50, deadline=None)
@given(a=st.text(max_size=40), b=st.text(max_size=40))
def test_symmetric_bounded_and_one_with_itself(a, b):
    lexical = Lexical.fit(TEXTS)
    a, b = normalize_text(a), normalize_text(b)
    ab = lexical.cosine(a, b)
    assert ab == pytest.approx(lexical.cosine(b, a), abs=1e-9)
    assert 0.0 <= ab <= 1.0
    assert lexical.cosine(a, a) == (pytest.approx(1.0) if a else 0.0)


def test_round_trips_through_json():
    lexical = Lexical.fit(TEXTS)
    again = Lexical.from_dict(json.loads(json.dumps(lexical.to_dict(), ensure_ascii=False)))
    assert again.df == lexical.df and again.documents == lexical.documents
    assert again.cosine(TEXTS[0], TEXTS[1]) == lexical.cosine(TEXTS[0], TEXTS[1])


@pytest.mark.parametrize("broken", [{}, {"analyzer": "char", "ngram_range": [1, 3], "df": {}},
                                    {"analyzer": "word", "ngram_range": [1, 3], "df": {},
                                     "documents": 3},
                                    {"analyzer": "char", "ngram_range": [1, 3], "df": [],
                                     "documents": 3}])
def test_a_malformed_file_is_a_bundle_error(broken):
    with pytest.raises(BundleError, match="lexical.json"):
        Lexical.from_dict(broken)


def test_blend_is_the_mean_of_both_cosines():
    assert blend(0.8, 0.4) == pytest.approx(0.6)
    assert blend(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx([0.5, 0.5])
