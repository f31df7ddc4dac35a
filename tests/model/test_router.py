"""The Router answers per text: hierarchy-consistent, calibrated, with the duty-list entry."""

from __future__ import annotations

import numpy as np
import pytest

from model.router import Router

TEXTS = [
    "市民来电反映: 秀英区向荣北路金美花园外面很多机动车违停，请交警局核实处理，谢谢！",
    "其原来在公司上班有社保，请问辞职出来了个人社保怎么交费？",
    "龙华区南沙路坡博新村二巷102号处有一盏路灯不亮",
]


@pytest.fixture(scope="module")
def router(tiny_bundle):
    return Router.load(tiny_bundle.path)


def test_one_routing_per_text_in_order(router):
    routings = router.route(TEXTS)
    assert len(routings) == 3
    for r in routings:
        assert r.text and "核实处理" not in r.text
        assert r.decision in ("auto", "review")
        assert r.model_version == "tiny-v1"

    # A text's int8 activations are scaled per token: its batch-mates change nothing.
    single = router.predict_proba(TEXTS[:1])
    batched = router.predict_proba(TEXTS)
    for head in single:
        np.testing.assert_allclose(single[head][0], batched[head][0], atol=1e-5)


@pytest.mark.parametrize("threshold", [0.0, 1.01])
def test_a_decision_model_decides_auto_or_review(tiny_bundle, bundle_copy, tmp_path, threshold):
    import json

    from model.bundle import sha256_file
    from model.calibration import NEVER

    path = bundle_copy(tiny_bundle.path, tmp_path, "decision-v1")
    cal = json.loads((path / "calibration.json").read_text(encoding="utf-8"))
    labels = len(cal["thresholds"]["department"])
    cal["thresholds"]["department"] = [NEVER if threshold == 0.0 else 0.0] * labels
    cal["decision_models"] = {"department": {  # P(correct) = sigmoid(log confidence)
        "coefficients": [1.0, 0.0, 0.0, 0.0, 0.0], "intercept": 0.0, "threshold": threshold,
        "part_temperatures": [1.0, 1.0], "log_support": [0.0] * labels}}
    (path / "calibration.json").write_text(json.dumps(cal), encoding="utf-8")
    manifest = json.loads((path / "bundle.json").read_text(encoding="utf-8"))
    manifest["files"]["calibration.json"] = sha256_file(path / "calibration.json")
    (path / "bundle.json").write_text(json.dumps(manifest), encoding="utf-8")
    decisions = {r.decision for r in Router.load(path).route(TEXTS)}
    assert decisions == {"auto" if threshold == 0.0 else "review"}  # the thresholds say otherwise


def test_subcategory_never_contradicts_category(router):
    for r in router.route(TEXTS):
        assert r.subcategory.label.split("/", 1)[0] == r.category.label
        assert r.duty.category == r.category.label
        assert r.duty.key == r.subcategory.label
        assert len(r.department.top) == 3
        confidences = [c for _, c in r.department.top]
        assert confidences == sorted(confidences, reverse=True)


def test_probabilities_and_embeddings(router):
    probs = router.predict_proba(TEXTS)
    for head, p in probs.items():
        assert p.shape == (3, len(router.spaces[head]))
        np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    emb = router.embed(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-3)


def test_text_that_normalises_to_nothing_goes_to_review(router):
    [r] = router.route(["请交警核实处理！（请职能局按规定在30分钟内联系市民，响应处置）"])
    assert r.text == ""
    assert r.decision == "review"


def test_empty_batch(router):
    assert router.route([]) == []


def test_to_dict_is_json_ready(router):
    import json

    d = router.route(TEXTS[:1])[0].to_dict()
    json.dumps(d, ensure_ascii=False)
    assert set(d) >= {"category", "subcategory", "department", "duty", "decision", "model_version"}


def test_a_model_giving_nan_fails_instead_of_routing(tiny_bundle, bundle_copy, damage_weights,
                                                      tmp_path):
    from model.errors import ModelOutputError

    damaged = bundle_copy(tiny_bundle.path, tmp_path, "nan-v1")
    damage_weights(damaged, "nan")
    router = Router.load(damaged)
    with pytest.raises(ModelOutputError, match="non-finite"):
        router.route(TEXTS)
    [unchecked] = router.route(TEXTS[:1], check_finite=False)  # what the probe check measures
    assert np.isnan(unchecked.department.confidence)


def test_the_same_text_gets_the_same_answer_whatever_its_batch(router):
    """64 real texts alone, in one batch, and shuffled into batches with other texts: identical
    labels and confidences (dynamic int8 moved logits by up to 1.05 with batch-mates)."""
    import gzip
    import json
    import random

    from tests.conftest import REPO

    path = REPO / "data" / "haikou12345" / "tickets-2018-02-to-04.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        texts = [t for t in (json.loads(line).get("text") for line in f) if t][-200:]
    probes, others = texts[:64], texts[64:]

    def answers(routings):
        return [{h: (p.label, p.confidence, p.top) for h, p in r.heads.items()} for r in routings]

    alone = answers([router.route([t])[0] for t in probes])
    together = answers(router.route(probes))
    rng = random.Random(0)
    mixed_in = probes + others[:rng.randint(10, 100)]
    order = list(range(len(mixed_in)))
    rng.shuffle(order)
    routed = router.route([mixed_in[i] for i in order])
    mixed = answers([routed[order.index(i)] for i in range(len(probes))])
    for a, b, c in zip(alone, together, mixed, strict=True):
        for head in a:
            assert a[head][0] == b[head][0] == c[head][0]
            assert abs(a[head][1] - b[head][1]) < 1e-5 and abs(a[head][1] - c[head][1]) < 1e-5
