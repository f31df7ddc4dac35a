"""Shared fixtures: a tiny encoder and a tiny router bundle, built once per test session."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HAIKOU_YAML = REPO / "data" / "datasets" / "haikou12345.yaml"


@pytest.fixture(scope="session")
def haikou_sample():
    """~600 real Haikou records (all heads) and ~100 older-taxonomy ones (department only)."""
    from training.datasets import load_dataset

    dataset = load_dataset(HAIKOU_YAML)
    rng = random.Random(0)
    current = [r for r in dataset.records if "category" in r.labels]
    older = [r for r in dataset.records if "category" not in r.labels]
    dataset.records = rng.sample(current, 600) + rng.sample(older, 100)
    return dataset


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory, haikou_sample) -> Path:
    from training.encoder import build_tiny_encoder

    return build_tiny_encoder(tmp_path_factory.mktemp("encoder"),
                              [r.text for r in haikou_sample.records])


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, haikou_sample, tiny_encoder_dir):
    """A real bundle (int8 ONNX, calibration, metrics) from the tiny encoder: seconds to build."""
    from training.finetune import FinetuneConfig
    from training.pipeline import BuildOptions, build_router

    config = FinetuneConfig.from_preset("tiny", base=str(tiny_encoder_dir), epochs=1)
    return build_router(haikou_sample, config, tmp_path_factory.mktemp("bundles"),
                        BuildOptions(version="tiny-v1", calibrate_duplicates=False),
                        run_dir=tmp_path_factory.mktemp("run"))


def copy_bundle(source: Path, bundles_dir: Path, version: str) -> Path:
    """A copy of `source` as `version`: only bundle.json's version changes (it is not hashed)."""
    target = bundles_dir / version
    shutil.copytree(source, target)
    manifest = json.loads((target / "bundle.json").read_text(encoding="utf-8"))
    manifest["version"] = version
    (target / "bundle.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    return target


@pytest.fixture(scope="session")
def bundle_copy():
    return copy_bundle


def _damage_weights(bundle_dir, how: str) -> None:
    """Rewrite model.onnx with damaged weights (still a loadable model) and update its hash,
    as bytes flipped after export would look to every check but routing."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from model.bundle import sha256_file

    model = onnx.load(bundle_dir / "model.onnx")
    rng = np.random.default_rng(0)
    for init in model.graph.initializer:
        values = numpy_helper.to_array(init)
        if values.size < 64:
            continue
        if how == "nan" and values.dtype == np.float32:
            values = np.full_like(values, np.nan)
        elif how == "scrambled" and values.dtype in (np.int8, np.uint8, np.float32):
            values = rng.permutation(values.ravel()).reshape(values.shape)
        else:
            continue
        init.CopyFrom(numpy_helper.from_array(values, init.name))
    onnx.save(model, bundle_dir / "model.onnx")
    manifest = json.loads((bundle_dir / "bundle.json").read_text())
    manifest["files"]["model.onnx"] = sha256_file(bundle_dir / "model.onnx")
    (bundle_dir / "bundle.json").write_text(json.dumps(manifest))


@pytest.fixture(scope="session")
def damage_weights():
    return _damage_weights
