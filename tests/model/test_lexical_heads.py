"""The router's char n-gram part: served scores equal scikit-learn's, the fusion is chosen on dev."""

from __future__ import annotations

import numpy as np
import pytest

from model.errors import BundleError
from model.lexical_heads import LexicalHeads, fuse
from model.normalize import normalize_text
from training.lexical_heads import choose_fusion, fit_lexical_heads


@pytest.fixture(scope="module")
def records(haikou_sample):
    return [r for r in haikou_sample.records if "category" in r.labels]


@pytest.fixture(scope="module")
def spaces(haikou_sample):
    return {h: haikou_sample.taxonomy.labels(h) for h in ("category", "department")}


def test_served_scores_equal_scikit_learns(records, spaces, tmp_path):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    train, test = records[:400], records[400:450]
    heads = fit_lexical_heads(train, spaces, max_features=5000)
    heads.save(tmp_path / "h.npz")
    served = LexicalHeads.load(tmp_path / "h.npz").scores([normalize_text(r.text) for r in test])
    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=2, sublinear_tf=True,
                                 max_features=5000)
    features = vectorizer.fit_transform([normalize_text(r.text) for r in train])
    labels = np.array([r.labels["category"] for r in train])
    svm = LinearSVC(C=0.5).fit(features, labels)
    expected = svm.decision_function(vectorizer.transform([normalize_text(r.text) for r in test]))
    columns = [spaces["category"].index(c) for c in svm.classes_]
    np.testing.assert_allclose(served["category"][:, columns], expected, atol=2e-3)
    assert (served["category"].argmax(1) == np.array(columns)[expected.argmax(1)]).all()


def test_the_fusion_is_never_worse_on_dev_than_either_part(records, spaces):
    rng = np.random.default_rng(0)
    n, k = 200, len(spaces["category"])
    targets = {"category": rng.integers(0, k, n)}
    encoder = {"category": rng.normal(size=(n, k))}
    lexical = {"category": rng.normal(size=(n, k))}
    weights, figures = choose_fusion(encoder, lexical, targets)
    fused = fuse(encoder, lexical, weights)["category"]
    accuracy = float((fused.argmax(1) == targets["category"]).mean())
    f = figures["category"]
    assert accuracy == f["fused"] >= max(f["encoder"], f["lexical"])


def test_equally_accurate_fusions_are_settled_by_log_loss():
    """Four rows both parts get right: every weighting ties on accuracy. The n-grams are the
    surer part here, so the tie goes to the fusion leaning on them, not to the encoder alone."""
    targets = {"category": np.array([0, 1, 0, 1])}
    encoder = {"category": np.array([[0.2, 0.0], [0.0, 0.2], [0.2, 0.0], [0.1, 0.0]])}
    lexical = {"category": np.array([[3.0, -3.0], [-3.0, 3.0], [3.0, -3.0], [-3.0, 3.0]])}
    weights, figures = choose_fusion(encoder, lexical, targets)
    assert figures["category"]["fused"] == 1.0 and figures["category"]["encoder"] == 0.75
    assert weights["category"]["lexical"] > 0
    encoder["category"][3] = [0.0, 0.1]  # now all tie at 1.0
    weights, _ = choose_fusion(encoder, lexical, targets)
    assert weights["category"] != {"encoder": 1.0, "lexical": 0.0}


def test_an_inconsistent_file_is_refused():
    with pytest.raises(BundleError, match="inconsistent"):
        LexicalHeads(["a", "b"], np.ones(2), {"category": np.zeros((3, 4))},
                     {"category": np.zeros(4)})
