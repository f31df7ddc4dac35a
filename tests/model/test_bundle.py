"""Bundles describe themselves and refuse to load when a part is missing or inconsistent."""

from __future__ import annotations

import json
import shutil

import pytest

from model.bundle import LEXICAL, MANIFEST, PARTS, load_bundle, sha256_file
from model.errors import BundleError


@pytest.fixture
def bundle_copy(tmp_path, tiny_bundle):
    path = tmp_path / "b"
    shutil.copytree(tiny_bundle.path, path)
    return path


def _rewrite(path, name, data):
    (path / name).write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    manifest["files"][name] = sha256_file(path / name)
    (path / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")


def test_a_built_bundle_describes_itself(tiny_bundle):
    b = load_bundle(tiny_bundle.path)
    assert b.version == "tiny-v1"
    assert set(b.heads) == {"category", "subcategory", "department"}
    for key in ("base_encoder", "data_hash", "training", "max_length", "gates", "splits"):
        assert key in b.manifest
    assert "dev" in b.metrics and "accuracy" in b.metrics["dev"]["department"]
    assert "# Huying router tiny-v1" in (b.path / "model_card.md").read_text(encoding="utf-8")


def test_a_built_bundle_ships_the_lexical_model_of_its_training_texts(tiny_bundle):
    lexical = load_bundle(tiny_bundle.path).lexical()
    assert lexical is not None and lexical.documents == tiny_bundle.manifest["splits"]["train"]
    assert lexical.cosine("小区垃圾", "小区垃圾") == pytest.approx(1.0)


@pytest.mark.parametrize("part", [*PARTS, LEXICAL])
def test_a_missing_part_is_refused(bundle_copy, part):
    (bundle_copy / part).unlink()
    with pytest.raises(BundleError, match=part):
        load_bundle(bundle_copy)


def test_no_manifest_means_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match="not a model bundle"):
        load_bundle(tmp_path)


def test_a_modified_file_is_refused(bundle_copy):
    with open(bundle_copy / "model.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(BundleError, match="does not match the hash"):
        load_bundle(bundle_copy)


def test_thresholds_that_do_not_fit_the_label_space_are_refused(bundle_copy):
    cal = json.loads((bundle_copy / "calibration.json").read_text(encoding="utf-8"))
    cal["thresholds"]["department"] = cal["thresholds"]["department"][:-1]
    _rewrite(bundle_copy, "calibration.json", cal)
    with pytest.raises(BundleError, match="thresholds for department"):
        load_bundle(bundle_copy)


def test_a_decision_model_that_does_not_fit_the_label_space_is_refused(bundle_copy):
    cal = json.loads((bundle_copy / "calibration.json").read_text(encoding="utf-8"))
    labels = len(cal["thresholds"]["department"])
    cal["decision_models"] = {"department": {
        "coefficients": [1.0] * 5, "intercept": 0.0, "threshold": 0.9,
        "part_temperatures": [1.0, 1.0], "log_support": [0.0] * (labels - 1)}}
    _rewrite(bundle_copy, "calibration.json", cal)
    with pytest.raises(BundleError, match="department decision model"):
        load_bundle(bundle_copy)


def test_a_calibration_missing_a_field_is_refused(bundle_copy):
    cal = json.loads((bundle_copy / "calibration.json").read_text(encoding="utf-8"))
    cal["decision_models"] = {"department": {"coefficients": [1.0] * 5}}
    _rewrite(bundle_copy, "calibration.json", cal)
    with pytest.raises(BundleError, match="calibration.json is invalid"):
        load_bundle(bundle_copy)


def test_labels_missing_from_the_taxonomy_snapshot_are_refused(bundle_copy):
    tax = json.loads((bundle_copy / "taxonomy.json").read_text(encoding="utf-8"))
    removed = tax["departments"].pop(0)
    tax["entries"] = [e for e in tax["entries"] if e["department"] != removed]
    _rewrite(bundle_copy, "taxonomy.json", tax)
    with pytest.raises(BundleError, match="department labels not in the taxonomy"):
        load_bundle(bundle_copy)


def test_onnx_outputs_must_match_the_label_spaces(bundle_copy):
    from model.router import Router

    manifest = json.loads((bundle_copy / MANIFEST).read_text(encoding="utf-8"))
    manifest["heads"] = ["department", "category", "subcategory"]
    (bundle_copy / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(BundleError, match="outputs"):
        Router.load(bundle_copy)
