"""The TF-IDF baseline on 320 real Haikou tickets: shapes, masked heads, decoding, save and load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from model.errors import BundleError, DataError, InvalidInput
from training.baseline import BaselineConfig, TfidfBaseline, train_baseline
from training.datasets import load_dataset
from training.predictor import Predictor, load_predictor

FIXTURE_YAML = Path(__file__).resolve().parent.parent / "fixtures" / "haikou-sample.yaml"


@pytest.fixture(scope="module")
def sample():
    dataset = load_dataset(FIXTURE_YAML)
    return dataset, dataset.split(), {h: dataset.taxonomy.labels(h) for h in dataset.heads}


@pytest.fixture(scope="module")
def trained(sample):
    dataset, splits, spaces = sample
    return train_baseline(splits["train"], spaces, dataset=dataset.config.name)


def test_probabilities_cover_the_whole_label_space(sample, trained):
    _, splits, spaces = sample
    texts = [r.text for r in splits["dev"]]
    probs = trained.predict_proba(texts)
    assert isinstance(trained, Predictor)
    assert set(probs) == {"category", "subcategory", "department"}
    for head, p in probs.items():
        assert p.shape == (len(texts), len(spaces[head]))
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-9)
    seen = {r.labels["category"] for r in splits["train"] if "category" in r.labels}
    unseen = [i for i, c in enumerate(spaces["category"]) if c not in seen]
    assert unseen and not probs["category"][:, unseen].any()


def test_top1_subcategory_lies_under_top1_category(sample, trained):
    _, splits, _ = sample
    answers = trained.predict([r.text for r in splits["dev"] + splits["test"]], k=3)
    assert all(a["subcategory"].label.split("/", 1)[0] == a["category"].label for a in answers)
    assert all(len(a["department"].labels) == 3 for a in answers)


def test_rows_train_only_the_heads_they_carry(sample, trained):
    _, splits, spaces = sample
    train = splits["train"]
    per_head = trained.meta["training_rows_per_head"]
    assert per_head["department"] == sum("department" in r.labels for r in train)
    assert per_head["category"] == sum("category" in r.labels for r in train) < len(train)
    older_only = [r for r in train if "category" not in r.labels]
    department_only = train_baseline(older_only, spaces)
    assert set(department_only.spaces) == {"department"}


def test_save_and_load_give_identical_probabilities(sample, trained, tmp_path):
    _, splits, _ = sample
    texts = [r.text for r in splits["test"]]
    trained.save(tmp_path)
    meta = json.loads((tmp_path / "meta.json").read_text(encoding="utf-8"))
    assert meta["kind"] == "tfidf-baseline" and meta["dataset"] == "haikou-sample"
    assert {"heads", "spaces", "training_rows", "data_hash", "created"} <= set(meta)
    for loaded in (TfidfBaseline.load(tmp_path), load_predictor(tmp_path)):
        before, after = trained.predict_proba(texts), loaded.predict_proba(texts)
        assert loaded.spaces == trained.spaces
        for head in before:
            np.testing.assert_array_equal(before[head], after[head])


def test_bad_config_and_unlabelled_data_are_refused(sample):
    _, splits, spaces = sample
    with pytest.raises(InvalidInput, match="C must be positive"):
        BaselineConfig(C=0)
    with pytest.raises(InvalidInput, match="class_weight"):
        BaselineConfig(class_weight="heavy")
    unlabelled = [type(r)(r.id, r.text, {}, r.source) for r in splits["train"][:5]]
    with pytest.raises(DataError, match="no training record carries a label"):
        train_baseline(unlabelled, spaces)


def test_load_predictor_names_what_a_model_directory_needs(tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        load_predictor(tmp_path / "missing")
    with pytest.raises(BundleError, match="neither a baseline"):
        load_predictor(tmp_path)
